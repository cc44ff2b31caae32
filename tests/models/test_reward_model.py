import torch

from rewardlab.data.batching import pad_batch
from rewardlab.models.checkpoint import load_reward_model, save_reward_model
from rewardlab.models.reward_model import last_token_index
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.rewards.model import ModelReward


def test_last_token_index_any_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 1]


def _one_at_a_time(model, seqs):
    return torch.cat([model(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)) for s in seqs])


def test_left_right_padding_match_single_scoring(tokenizer):
    model = tiny_reward_model(tokenizer, seed=3)
    seqs = [tokenizer(t)["input_ids"] for t in ["the cat sat", "a big red dog ran on the mat now", "yes"]]
    single = _one_at_a_time(model, seqs)
    with torch.no_grad():
        for side in ("left", "right"):
            ids, mask = pad_batch(seqs, tokenizer.pad_token_id, side=side)
            torch.testing.assert_close(model(ids, mask), single, atol=1e-5, rtol=0)


def test_pad_equal_to_eos_does_not_hide_trailing_eos(tokenizer):
    model = tiny_reward_model(tokenizer, seed=4)
    eos = tokenizer.eos_token_id
    seqs = [tokenizer("the cat")["input_ids"], tokenizer("a dog ran on the mat")["input_ids"]]
    assert seqs[0][-1] == eos  # the tiny tokenizer ends sequences with eos
    single = _one_at_a_time(model, seqs)
    with torch.no_grad():
        ids, mask = pad_batch(seqs, pad_id=eos, side="right")
        torch.testing.assert_close(model(ids, mask), single, atol=1e-5, rtol=0)
        # the trailing eos is scored: dropping it changes the score
        cut = model(torch.tensor([seqs[0][:-1]]), torch.ones(1, len(seqs[0]) - 1, dtype=torch.long))
    assert not torch.allclose(cut, single[:1])


def test_scores_batch_invariant(tokenizer, corpus):
    reward = ModelReward(tiny_reward_model(tokenizer, seed=5), tokenizer, batch_size=3)
    prompts, responses = corpus[:10], corpus[10:20]
    full = reward.score(prompts, responses)
    assert full.shape == (10,)
    parts = torch.cat([reward.score(prompts[i : i + 1], responses[i : i + 1]) for i in range(10)])
    torch.testing.assert_close(full, parts, atol=1e-5, rtol=0)


def test_checkpoint_roundtrip_identical_scores(tokenizer, corpus, tmp_path):
    model = tiny_reward_model(tokenizer, num_outputs=3, seed=6)
    with torch.no_grad():
        model.head.bias.add_(torch.tensor([1.0, -2.0, 0.5]))  # the head must travel with the checkpoint
    before = ModelReward(model, tokenizer).score(corpus[:7], corpus[7:14])
    save_reward_model(model, tokenizer, tmp_path / "ckpt", manifest={"max_length": 512})
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"model.safetensors", "rewardlab.json", "config.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    loaded, tok, manifest = load_reward_model(tmp_path / "ckpt")
    assert manifest["head"] == {"num_outputs": 3, "pooling": "last", "head": "linear"}
    after = ModelReward(loaded, tok, manifest=manifest).score(corpus[:7], corpus[7:14])
    assert after.shape == (7, 3)
    torch.testing.assert_close(before, after, atol=0, rtol=0)
