import math

import pytest
import torch

from rewardlab.data.batching import pad_batch
from rewardlab.models.generation import (
    Rollout,
    encode_prompts,
    sample,
    sequence_kl,
    sequence_logprobs,
    top_p_filter,
)
from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "hello world, said the bird"] * 10


@pytest.fixture(scope="module")
def tok():
    return train_tiny_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def lm(tok):
    """A tiny LM trained a few steps on TEXTS: varied greedy continuations test positions and padding."""
    m = tiny_causal_lm(tok, seed=0)
    ids, mask = pad_batch([tok(t)["input_ids"] for t in TEXTS[:3]], tok.pad_token_id, side="left")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(30):
        labels = ids.masked_fill(mask == 0, -100)
        loss = m(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                 labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def test_greedy_matches_hf_generate(lm, tok):
    r = sample(lm, tok, ["the cat"], 1, 12, temperature=0)
    ids = torch.tensor(encode_prompts(tok, ["the cat"]))
    hf = lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                     pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    expect = hf[0, ids.shape[1]:].tolist()
    if tok.eos_token_id in expect:
        expect = expect[: expect.index(tok.eos_token_id) + 1]
    assert r.response_ids[0] == expect
    assert len(set(expect)) > 1  # not a degenerate repeat, so positions matter


def test_left_padding_does_not_change_greedy_output(lm, tok):
    alone = sample(lm, tok, ["hello"], 1, 10, temperature=0).response_ids[0]
    batched = sample(lm, tok, ["hello", "a dog ran in the park and the cat sat"], 1, 10, temperature=0)
    assert batched.response_ids[0] == alone


def test_rollout_layout_and_seeding(lm, tok):
    prompts = ["the cat", "a dog", "hello"]
    r = sample(lm, tok, prompts, 4, 8, seed=3, batch_size=5)
    assert isinstance(r, Rollout) and len(r) == 12
    assert r.group == [0] * 4 + [1] * 4 + [2] * 4
    assert r.prompts == [p for p in prompts for _ in range(4)]
    assert r.prompt_ids[5] == tok("a dog", add_special_tokens=False)["input_ids"]
    for ids, text in zip(r.response_ids, r.responses, strict=True):
        assert 1 <= len(ids) <= 8
        assert tok.eos_token_id not in ids[:-1]
        assert text == tok.decode(ids, skip_special_tokens=True)
    again = sample(lm, tok, prompts, 4, 8, seed=3, batch_size=5)
    assert again.response_ids == r.response_ids
    other = sample(lm, tok, prompts, 4, 8, seed=4, batch_size=5)
    assert other.response_ids != r.response_ids
    sub = r.select([1, 6])
    assert sub.group == [0, 1] and sub.response_ids == [r.response_ids[1], r.response_ids[6]]


def test_first_token_frequencies_follow_softmax(lm, tok):
    """Empirical first-token distribution vs. the model softmax at temperature 2 (4-sigma bound)."""
    n = 2000
    r = sample(lm, tok, ["the cat"], n, 1, temperature=2.0, seed=0, batch_size=n)
    ids = torch.tensor(encode_prompts(tok, ["the cat"]))
    probs = (lm(ids).logits[0, -1] / 2.0).softmax(-1)
    counts = torch.bincount(torch.tensor([x[0] for x in r.response_ids]), minlength=probs.numel()).float()
    top = probs.topk(3).indices
    for t in top:
        p = probs[t].item()
        assert abs(counts[t].item() / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_top_p_filter_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = top_p_filter(logits, 0.7).softmax(-1)  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7 -> keep the first two
    assert torch.allclose(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    kept = top_p_filter(logits, 0.5).softmax(-1)  # the first token alone reaches 0.5
    assert torch.allclose(kept, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_sequence_logprobs_against_unpadded_forward(lm, tok):
    prompts = encode_prompts(tok, ["the cat", "a dog ran in the park"])
    responses = [[5, 9, 11], [7]]
    logps, mask = sequence_logprobs(lm, prompts, responses, pad_id=tok.pad_token_id)
    assert logps.shape == mask.shape == (2, 3)
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    for i in range(2):
        ids = torch.tensor([prompts[i] + responses[i]])
        ref = lm(ids).logits[0].log_softmax(-1)
        L = len(prompts[i])
        for t, y in enumerate(responses[i]):
            assert logps[i, t].item() == pytest.approx(ref[L - 1 + t, y].item(), abs=1e-5)
    assert logps[1, 1:].abs().sum() == 0
    chunked, _ = sequence_logprobs(lm, prompts, responses, pad_id=tok.pad_token_id, batch_size=1)
    assert torch.allclose(chunked, logps, atol=1e-5)


def test_sequence_logprobs_has_gradients(lm, tok):
    logps, mask = sequence_logprobs(lm, [[3, 4]], [[5, 6]])
    (logps * mask).sum().backward()
    assert lm.transformer.wte.weight.grad is not None and lm.transformer.wte.weight.grad.abs().sum() > 0
    lm.zero_grad()


def test_sequence_kl_by_hand():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -9.0], [-1.0, -1.0, -7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert torch.allclose(sequence_kl(logps, ref, mask), torch.tensor([0.5 - 1.0, 0.5 + 0.5]))


def test_chat_prompts_use_template(tok):
    conv = [{"role": "user", "content": "hi"}]
    ids = encode_prompts(tok, [conv, ""])
    assert tok.decode(ids[0]).endswith("<|assistant|> ")
    assert ids[1] == [tok.bos_token_id]


# -- prompt budget: prompt + generation must fit the policy's positions ------------------------------------------------

LONG = " ".join(["the cat sat on the mat"] * 20)  # far beyond 32 positions in the tiny tokenizer


def test_position_limit_and_prompt_length_cap(tok):
    from rewardlab.errors import UserError
    from rewardlab.models.generation import position_limit, prompt_length_cap

    small = tiny_causal_lm(tok, n_positions=32)
    assert position_limit(small) == 32
    assert prompt_length_cap(small, 8) == 24  # 32 positions − 8 generated tokens
    assert prompt_length_cap(small, 8, 10) == 10 and prompt_length_cap(small, 8, 24) == 24
    for bad, flag in [((32,), "--max-new-tokens 32"), ((40,), "--max-new-tokens 40"), ((8, 25), "at most 24"),
                      ((0,), "--max-new-tokens 0"), ((8, 0), "--max-prompt-length 0")]:
        with pytest.raises(UserError, match=flag):
            prompt_length_cap(small, *bad)

    class NoLimit(torch.nn.Module):  # a config without any position field (e.g. a recurrent model)
        config = object()

    assert position_limit(NoLimit()) is None
    assert prompt_length_cap(NoLimit(), 10_000) is None and prompt_length_cap(NoLimit(), 8, 5) == 5


def test_truncation_keeps_the_end_and_a_leading_bos(tok):
    import copy

    from tokenizers import processors

    from rewardlab.models.generation import count_truncated

    full = tok(LONG, add_special_tokens=False)["input_ids"]
    assert len(full) > 30
    assert encode_prompts(tok, [LONG], 10) == [full[-10:]]  # the tiny tokenizer adds nothing before a text
    bos_tok = copy.deepcopy(tok)  # a Llama-style tokenizer: <bos> before every text
    bos_tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    assert encode_prompts(bos_tok, [LONG], 10) == [[tok.bos_token_id] + full[-9:]]
    assert encode_prompts(bos_tok, ["the cat"], 10) == [[tok.bos_token_id] + tok("the cat", add_special_tokens=False)
                                                        ["input_ids"]]
    assert count_truncated(tok, ["the cat", LONG, LONG + " again"], 10) == 2
    assert count_truncated(tok, [LONG], None) == 0 and count_truncated(tok, [LONG], len(full)) == 0


def test_sample_fits_a_long_prompt_into_the_positions(tok):
    small = tiny_causal_lm(tok, n_positions=32)
    ro = sample(small, tok, [LONG, "the cat"], 2, 8, seed=0)  # used to raise IndexError (positions ≥ 32)
    full = tok(LONG, add_special_tokens=False)["input_ids"]
    assert ro.prompt_ids[0] == full[-24:] and ro.prompt_ids[2] == tok("the cat", add_special_tokens=False)["input_ids"]
    assert all(1 <= len(r) <= 8 for r in ro.response_ids)
    logps, mask = sequence_logprobs(small, ro.prompt_ids, ro.response_ids, tok.pad_token_id)
    assert mask.sum().item() == sum(map(len, ro.response_ids)) and torch.isfinite(logps).all()
    assert sample(small, tok, [LONG], 1, 8, seed=0, max_prompt_length=5).prompt_ids[0] == full[-5:]


def test_nonnegative_kl_estimate_is_unbiased_and_never_negative():
    from rewardlab.models.generation import sequence_kl, sequence_kl_nonneg

    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(6, generator=g), 0)
    q = torch.softmax(torch.randn(6, generator=g), 0)
    # one token y ~ p: the expectation over all y (weights p) of each estimator is KL(p‖q) exactly
    logp, logq = p.log()[:, None], q.log()[:, None]
    mask = torch.ones(6, 1)
    kl = (p * (p.log() - q.log())).sum()
    k3, k1 = sequence_kl_nonneg(logp, logq, mask), sequence_kl(logp, logq, mask)
    assert (p * k3).sum() == pytest.approx(kl.item(), abs=1e-6) and (p * k1).sum() == pytest.approx(kl.item(), abs=1e-6)
    assert (k3 >= 0).all() and (k1 < 0).any()  # k1 is negative on some samples; k3 on none
    padded = sequence_kl_nonneg(torch.tensor([[0.0, -1.0]]), torch.tensor([[-2.0, 5.0]]), torch.tensor([[1.0, 0.0]]))
    assert padded.item() == pytest.approx(math.exp(-2.0) - 1 + 2.0)  # the masked token adds nothing
