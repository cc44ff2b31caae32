"""Prompt-shared, packed encoding (rewardlab.models.packing) equals separate encoding: rewards and gradients, for
GPT-2-, Llama-, Qwen2-, Gemma- and Mistral-style decoders, sdpa and eager attention, against both padding sides of
the plain padded forward."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModel, GemmaConfig, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

from rewardlab.data.batching import pad_batch
from rewardlab.models.packing import common_prefix, pack, packed_batches, plan_rows, share_groups
from rewardlab.models.reward_model import RewardModel

V = 100
SMALL = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)
CONFIGS = {
    "gpt2": lambda: GPT2Config(vocab_size=V, n_layer=2, n_embd=32, n_head=2, n_positions=256),
    "llama": lambda: LlamaConfig(**SMALL),
    "qwen2": lambda: Qwen2Config(**SMALL),
    "gemma": lambda: GemmaConfig(**{**SMALL, "num_key_value_heads": 1, "head_dim": 8}),
    "mistral": lambda: MistralConfig(**SMALL, sliding_window=None),
}


def prompt_groups(seed: int = 0) -> list[list[int]]:
    """Sequences in groups that share a prompt (some prompts empty, one response empty, a duplicate, a 1-token
    sequence), shuffled — what a batch of pairs or of m samples per prompt looks like as ids."""
    rng = random.Random(seed)
    seqs = []
    for _ in range(6):
        prompt = [rng.randrange(3, V) for _ in range(rng.randint(0, 30))]
        for _ in range(rng.randint(1, 4)):
            seqs.append(prompt + [rng.randrange(3, V) for _ in range(rng.randint(0 if prompt else 1, 12))])
    seqs += [[5], list(seqs[0])]
    rng.shuffle(seqs)
    return seqs


def reward_model(family: str, attn: str) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel(AutoModel.from_config(CONFIGS[family](), attn_implementation=attn)).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_packed_rewards_and_gradients_equal_separate_encoding(family, attn):
    model = reward_model(family, attn)
    assert model.packable() == (True, "")
    seqs = prompt_groups()
    packed = pack(seqs, pad_id=0, row_tokens=64)
    assert packed.num_tokens < sum(map(len, seqs))  # it shares: fewer tokens than the sequences hold
    for side in ("right", "left"):
        ids, mask = pad_batch(seqs, 0, side)
        torch.testing.assert_close(model(packed=packed), model(ids, mask), rtol=0, atol=1e-5)

    def grads(loss_of) -> list[torch.Tensor]:
        model.zero_grad()
        loss_of().backward()
        return [p.grad.clone() for p in model.parameters()]

    ids, mask = pad_batch(seqs, 0)
    separate = grads(lambda: (model(ids, mask) ** 2).sum())
    shared = grads(lambda: (model(packed=packed) ** 2).sum())
    scale = max(g.abs().max().item() for g in separate)
    for a, b in zip(separate, shared):
        assert (a - b).abs().max().item() <= 1e-5 * max(scale, 1.0)


def test_skip_token_is_read_past_like_transformers():
    """With skip_token_id (pad == eos), the read token is the last one that is not it, as in the padded forward."""
    model = reward_model("llama", "sdpa")
    model.skip_token_id = 7
    seqs = [[9, 8, 3, 7], [9, 8, 4, 7, 7], [9, 8], [7, 7]]
    ids, mask = pad_batch(seqs, 0)
    torch.testing.assert_close(model(packed=pack(seqs, 0, skip_token_id=7)), model(ids, mask), rtol=0, atol=1e-5)


def test_share_groups_follow_the_token_rule():
    """A sequence joins a group of m with common prefix P iff m·p' > (m−1)·P (fewer tokens); counted by hand."""
    a, b, c = [1, 2, 3, 4, 5], [1, 2, 3, 4, 6], [1, 2, 9]
    assert share_groups([a, b]) == [(4, [0, 1])]  # 5 + 5 → 4 + 1 + 1
    # c shares 2 tokens with {a, b} (P = 4): 2·2 > 1·4 is false → its own group
    assert share_groups([a, b, c]) == [(4, [0, 1]), (3, [2])]
    # d shares 3: 2·3 > 4 → joins, prefix 3
    d = [1, 2, 3, 7]
    assert share_groups([a, b, d]) == [(3, [0, 1, 2])]
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    groups = share_groups(prompt_groups())
    seqs = prompt_groups()
    for prefix, members in groups:  # every member really starts with the group's prefix
        assert all(seqs[i][:prefix] == seqs[members[0]][:prefix] for i in members)


def test_rows_respect_the_row_budget_and_hold_every_sequence_once():
    seqs = prompt_groups(1) * 3
    rows = plan_rows(seqs, row_tokens=40)
    held = sorted(i for row in rows for _, members in row for i in members)
    assert held == list(range(len(seqs)))
    for row in rows:
        size = sum(p + sum(len(seqs[i]) - p for i in m) for p, m in row)
        assert size <= 40 or len(row) == 1
    model = reward_model("gpt2", "sdpa")
    ids, mask = pad_batch(seqs, 0)
    expected = model(ids, mask)
    got = torch.empty_like(expected)
    for idx, packed in packed_batches(seqs, 0, row_tokens=40, batch_tokens=100):
        assert packed.input_ids.numel() <= max(100, packed.input_ids.shape[1])
        got[idx] = model(packed=packed)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_what_cannot_pack_says_why():
    bert = RewardModel(AutoModel.from_config(__import__("transformers").BertConfig(
        vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)),
        pooling="mean")
    ok, why = bert.packable()
    assert not ok and "encoder" in why
    torch.manual_seed(0)
    window = RewardModel(AutoModel.from_config(MistralConfig(**SMALL, sliding_window=16),
                                               attn_implementation="sdpa"))
    ok, why = window.packable(max_length=64)
    assert not ok and "sliding" in why
    assert window.packable(max_length=16)[0]  # every sequence within the window: the window never binds


IMPORTED = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3", "gpt_neox", "opt")


@pytest.mark.parametrize("family", IMPORTED)
def test_imported_classifiers_score_prompt_shared_as_separately(family, corpus, tmp_path):
    """A transformers decoder classifier directory, loaded as users load one: packed (the default) and unpacked
    scoring agree on m responses per prompt, and the unpacked scores are transformers' own logits (tested in
    test_hf_import / test_hf_more_families)."""
    from rewardlab.rewards.registry import load_reward
    from tests.models.hf_families import save_family
    from tests.models.test_hf_more_families import _decoder, family_tokenizer

    if family in ("gpt2", "llama", "mistral"):
        save_family(family, corpus, tmp_path)
    else:
        tok = family_tokenizer("gpt2", corpus)
        torch.manual_seed(0)
        from transformers import AutoModelForSequenceClassification

        AutoModelForSequenceClassification.from_config(_decoder(family, tok, 1)).save_pretrained(tmp_path)
        tok.save_pretrained(tmp_path)
    reward = load_reward(str(tmp_path), device="cpu")
    assert reward.packing, f"{family} should score prompt-shared"
    rng = random.Random(0)
    prompts, responses = [], []
    for _ in range(4):
        prompt = " ".join(rng.choice(corpus).split()[:rng.randint(3, 12)])
        for _ in range(rng.randint(1, 4)):
            prompts.append(prompt)
            responses.append(" " + " ".join(rng.choice(corpus).split()[:rng.randint(1, 6)]))
    packed = reward.score(prompts, responses)
    reward.packing = False
    torch.testing.assert_close(packed, reward.score(prompts, responses), rtol=0, atol=1e-5)


def test_fallback_is_said_once_and_scores_separately(monkeypatch, capsys, tokenizer):
    """An encoder cannot share prompts: the scorer says why on stderr, once per process, and scores as before."""
    import transformers

    from rewardlab.models import packing
    from rewardlab.models.scorer import PooledScorer

    monkeypatch.setattr(packing, "_SAID", set())
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64)
    bert = RewardModel(AutoModel.from_config(config), pooling="mean").eval()
    first, second = PooledScorer(bert, tokenizer), PooledScorer(bert, tokenizer)
    assert not first.packing and not second.packing
    err = capsys.readouterr().err
    assert err.count("encoding each sequence separately") == 1 and "encoder" in err
    assert PooledScorer(reward_model("gpt2", "sdpa"), tokenizer, packing="off").packing is False


def test_empty_sequences_score_as_one_pad_token_in_both_paths(tokenizer):
    """A tokenizer that adds no special token renders an empty prompt + empty response as no ids at all: scored as
    one pad token, the same packed or not, alone or in a batch (it used to crash when alone)."""
    from rewardlab.models.scorer import PooledScorer
    from rewardlab.models.tiny import tiny_reward_model

    model = tiny_reward_model(tokenizer)
    seqs = [[5, 6, 7], [], [5, 6, 8]]
    packed, plain = PooledScorer(model, tokenizer), PooledScorer(model, tokenizer, packing="off")
    assert packed.packing and not plain.packing
    expected = plain.score_ids([[tokenizer.pad_token_id]])
    for scorer in (packed, plain):
        torch.testing.assert_close(scorer.score_ids(seqs)[1:2], expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(scorer.score_ids([[]]), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(packed.score_ids(seqs), plain.score_ids(seqs), rtol=0, atol=1e-5)


def test_pack_reads_an_empty_sequence_as_one_pad_token():
    """Training packs its batches with pack(): an empty sequence there is the same one pad token as in the scorer."""
    model = reward_model("llama", "sdpa")
    ids, mask = pad_batch([[9, 8, 3], [0]], 0)
    torch.testing.assert_close(model(packed=pack([[9, 8, 3], []], 0)), model(ids, mask), rtol=0, atol=1e-5)
