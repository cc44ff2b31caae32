"""ProcessRewardModel: imported transformers token classifiers score as transformers does at the step ends, padding
does not change scores, rewardlab PRM checkpoints round-trip, and what is not a PRM is refused."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from rewardlab.data.step_encode import StepEncoder, StepFormat
from rewardlab.errors import UserError
from rewardlab.models.formats.prm import is_prm_dir, load_prm
from rewardlab.models.prm import ProcessRewardModel, gather_steps
from rewardlab.rewards.prm import PRMReward
from tests.models.hf_families import family_config, family_tokenizer

ITEMS = [("help me with this", ["the cat sat on a mat", "so the answer is two"]),
         ("a question", ["yes", "no maybe", "one two three four five", "good"]),
         ("please", ["big red dog"])]


def save_token_classifier(family: str, corpus, out, num_labels: int):
    tok = family_tokenizer(family, corpus + ["a . b"])
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(family_config(family, tok, num_labels))
    with torch.no_grad():  # a visible head
        for name, p in model.named_parameters():
            if name.startswith(("score", "classifier")):
                p.normal_(0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return AutoModelForTokenClassification.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)


def expected_probs(logits: torch.Tensor, num_labels: int) -> torch.Tensor:
    """P(correct) from transformers' logits: σ(logit) for 1 label, softmax(...)[1] for 2."""
    return torch.sigmoid(logits[..., 0]) if num_labels == 1 else torch.softmax(logits, -1)[..., 1]


@pytest.mark.parametrize("num_labels", [1, 2])
def test_gpt2_token_classifier_matches_transformers_at_step_ends(tmp_path, corpus, num_labels):
    ref, tok = save_token_classifier("gpt2", corpus, tmp_path, num_labels)
    assert is_prm_dir(tmp_path)
    reward = PRMReward.from_pretrained(tmp_path, device="cpu", batch_size=2)
    assert reward.separator == "\n" and reward.model.num_labels == num_labels  # TRL's default separator
    got = reward.score_steps([p for p, _ in ITEMS], [s for _, s in ITEMS])
    enc = StepEncoder(tok, max_length=128)
    for (prompt, steps), scores in zip(ITEMS, got):
        e = enc.encode(prompt, steps)
        with torch.no_grad():
            logits = ref(input_ids=torch.tensor([e.ids])).logits[0, e.ends]
        torch.testing.assert_close(torch.tensor(scores), expected_probs(logits, num_labels), atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_bert_token_classifier_matches_model_of_tokenizer_output(tmp_path, corpus, num_labels):
    ref, tok = save_token_classifier("bert", corpus, tmp_path, num_labels)
    reward = PRMReward.from_pretrained(tmp_path, device="cpu", step_format=StepFormat(" ."))
    assert reward.model.encoder
    prompt, steps = "the cat", ["sat on", "a mat", "good"]
    text = "the cat sat on . a mat . good ."
    batch = tok(text, return_tensors="pt")
    e = reward.encoder.encode(prompt, steps)
    assert batch["input_ids"][0].tolist() == e.ids
    with torch.no_grad():
        logits = ref(**batch).logits[0, e.ends]
    got = reward.score_steps([prompt], [steps])[0]
    torch.testing.assert_close(torch.tensor(got), expected_probs(logits, num_labels), atol=1e-5, rtol=0)


def test_two_label_step_logit_is_the_log_odds_of_label_1(tmp_path, corpus):
    ref, _ = save_token_classifier("gpt2", corpus, tmp_path, 2)
    model, _, manifest = load_prm(tmp_path)
    assert manifest["kind"] == "prm" and manifest["steps"]["separator"] == "\n"
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        logits = ref(input_ids=ids).logits[0]
        z = model(ids, torch.ones_like(ids))[0]
    torch.testing.assert_close(z, logits[:, 1] - logits[:, 0], atol=1e-5, rtol=0)


def test_left_padded_decoder_batch_scores_like_single_items(tmp_path, corpus):
    save_token_classifier("gpt2", corpus, tmp_path, 1)  # absolute positions (RoPE would hide a shift)
    model, tok, _ = load_prm(tmp_path)
    enc = StepEncoder(tok, max_length=128)
    encoded = [enc.encode(p, s) for p, s in ITEMS]
    singles = [gather_steps(model(torch.tensor([e.ids]), torch.ones(1, len(e.ids), dtype=torch.long)), [e.ends])[0]
               for e in encoded]
    width = max(len(e.ids) for e in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ends = []
    for i, e in enumerate(encoded):  # left padding: positions shift by the pad count
        pad = width - len(e.ids)
        ids[i, pad:], mask[i, pad:] = torch.tensor(e.ids), 1
        ends.append([j + pad for j in e.ends])
    with torch.no_grad():
        batched = gather_steps(model(ids, mask), ends)
    for a, b in zip(singles, batched):
        torch.testing.assert_close(a.detach(), b, atol=1e-5, rtol=0)


def test_scores_do_not_depend_on_batch_composition(tmp_path, corpus):
    save_token_classifier("gpt2", corpus, tmp_path, 2)
    prompts, steps = [p for p, _ in ITEMS], [s for _, s in ITEMS]
    one = PRMReward.from_pretrained(tmp_path, device="cpu", batch_size=1).score_steps(prompts, steps)
    many = PRMReward.from_pretrained(tmp_path, device="cpu", batch_size=8).score_steps(prompts, steps)
    for a, b in zip(one, many):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)


def test_encoder_refuses_left_padding(tmp_path, corpus):
    save_token_classifier("bert", corpus, tmp_path, 1)
    model, _, _ = load_prm(tmp_path)
    with pytest.raises(ValueError, match="right-padded"):
        model(torch.tensor([[0, 5, 6]]), torch.tensor([[0, 1, 1]]))


def test_rewardlab_checkpoint_round_trip_and_refused_as_pairwise_rm(tmp_path, tokenizer):
    from transformers import GPT2Model

    from rewardlab.models.checkpoint import load_reward_model, save_reward_model
    from rewardlab.models.tiny import tiny_gpt2_config

    torch.manual_seed(0)
    model = ProcessRewardModel(GPT2Model(tiny_gpt2_config(tokenizer, n_layer=1, n_embd=32))).eval()
    save_reward_model(model, tokenizer, tmp_path, manifest={"kind": "prm", "steps": StepFormat("\n\n").to_dict(),
                                                            "max_length": 77})
    loaded, _, manifest = load_prm(tmp_path)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, torch.ones_like(ids)), model(ids, torch.ones_like(ids)))
    assert PRMReward(loaded, tokenizer, manifest).separator == "\n\n"
    with pytest.raises(UserError, match="a process reward model"):
        load_reward_model(tmp_path)


def test_refusals(tmp_path, corpus):
    ref, tok = save_token_classifier("gpt2", corpus, tmp_path / "three", 3)
    with pytest.raises(UserError, match="3 labels"):
        load_prm(tmp_path / "three")
    (tmp_path / "bin").mkdir()
    ref.config.save_pretrained(tmp_path / "bin")
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="never loads pickle"):
        load_prm(tmp_path / "bin")
    with pytest.raises(UserError, match="not a process reward model"):
        load_prm(tmp_path)
    with pytest.raises(ValueError):
        ProcessRewardModel(ref.transformer, num_labels=3)
