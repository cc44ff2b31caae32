"""``--engine vllm`` against the transformers path, on a tiny GPT-2 saved to a directory (run with ``make test-vllm``:
vLLM's CPU build lives in a venv of its own; skipped where vLLM is not installed).

References: greedy token ids of :func:`rewardlab.models.generation.sample` (equal), and for sampled tokens the
policy's own next-token distribution (softmax of the torch logits at the temperature, nucleus-filtered by
:func:`~rewardlab.models.generation.top_p_filter`), against which vLLM's empirical first-token frequencies are
tested with a chi-square test (scipy)."""

import pytest
import torch

pytest.importorskip("vllm")

from rewardlab.models.engines import policy_sampler  # noqa: E402
from rewardlab.models.generation import encode_prompts, sample, top_p_filter  # noqa: E402
from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer  # noqa: E402

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "hello world, said the bird", "one two three"] * 10
PROMPTS = ["the cat", "a dog ran in the park and the cat sat on", "hello", [{"role": "user", "content": "one two"}]]


def spread(model, seed: int) -> None:
    """Weights drawn with std 0.3 (from-config init is 0.02: near-uniform logits, greedy repeats one token)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.fixture(scope="module")
def tok():
    return train_tiny_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def engine(tok):
    """(policy, the vLLM sampler holding it): one engine for the module (it takes seconds to start)."""
    lm = tiny_causal_lm(tok, seed=0)
    spread(lm, 0)
    with policy_sampler("vllm", lm, tok) as draw:
        yield lm, draw


def test_greedy_equals_transformers(engine, tok):
    lm, draw = engine
    ours = draw(lm, tok, PROMPTS, 1, 24, temperature=0)
    ref = sample(lm, tok, PROMPTS, 1, 24, temperature=0)
    assert ours.response_ids == ref.response_ids
    assert ours.prompt_ids == ref.prompt_ids and ours.responses == ref.responses
    assert all(len(set(r)) > 3 for r in ref.response_ids)  # varied tokens: positions and the cache matter


def test_sampled_layout_lengths_and_seed(engine, tok):
    lm, draw = engine
    a = draw(lm, tok, PROMPTS, 5, 12, temperature=1.3, seed=7)
    assert len(a) == 20 and a.group == [g for g in range(4) for _ in range(5)]
    assert a.prompts == [p for p in PROMPTS for _ in range(5)]
    assert a.prompt_ids == [ids for ids in encode_prompts(tok, PROMPTS) for _ in range(5)]
    assert all(1 <= len(r) <= 12 for r in a.response_ids)
    eos = tok.eos_token_id
    assert all(r[-1] == eos and eos not in r[:-1] for r in a.response_ids if len(r) < 12)  # stopped at eos, kept
    assert all(eos not in r for r in a.response_ids if len(r) == 12 and r[-1] != eos)
    assert draw(lm, tok, PROMPTS, 5, 12, temperature=1.3, seed=7).response_ids == a.response_ids
    assert draw(lm, tok, PROMPTS, 5, 12, temperature=1.3, seed=8).response_ids != a.response_ids
    assert len({tuple(r) for r in a.response_ids}) > 10  # samples of a prompt differ (per-request seeds)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_first_token_follows_the_policy(engine, tok, temperature, top_p):
    """4000 one-token samples: the frequencies of the likeliest tokens (and the rest pooled) fit the torch
    distribution (chi-square p > 1e-3; deterministic, seeded)."""
    from scipy.stats import chisquare

    lm, draw = engine
    prompt = "a dog ran"
    n = 4000
    ro = draw(lm, tok, [prompt], n, 1, temperature=temperature, top_p=top_p, seed=3)
    ids = torch.tensor([encode_prompts(tok, [prompt])[0]])
    with torch.no_grad():
        logits = lm(input_ids=ids).logits[0, -1].float()
    p = top_p_filter((logits / temperature)[None], top_p).softmax(-1)[0].double()
    counts = torch.bincount(torch.tensor([r[0] for r in ro.response_ids]), minlength=p.numel()).double()
    assert counts[p == 0].sum() == 0  # nothing outside the nucleus
    top = p.argsort(descending=True)[:8]
    rest = torch.ones_like(p, dtype=torch.bool)
    rest[top] = False
    observed = torch.cat([counts[top], counts[rest].sum()[None]])
    expected = torch.cat([p[top], p[rest].sum()[None]]) * n
    keep = expected > 5  # chi-square needs expected counts of at least ~5
    expected = expected[keep] * observed[keep].sum() / expected[keep].sum()
    assert chisquare(observed[keep].numpy(), expected.numpy()).pvalue > 1e-3


def test_sync_copies_new_weights(engine, tok):
    lm, draw = engine  # one engine per process (vLLM's in-process engine): this one, its weights restored after
    before = draw(lm, tok, PROMPTS, 1, 16, temperature=0).response_ids
    try:
        spread(lm, 2)
        draw.sync(lm.state_dict())
        after = draw(lm, tok, PROMPTS, 1, 16, temperature=0).response_ids
        assert after == sample(lm, tok, PROMPTS, 1, 16, temperature=0).response_ids
        assert after != before
    finally:
        spread(lm, 0)
        draw.sync(lm.state_dict())
    assert draw(lm, tok, PROMPTS, 1, 16, temperature=0).response_ids == before


def test_many_long_seeded_requests(engine, tok):
    """More prompt tokens than one engine step takes (vLLM's CPU budget: 4096): a request's prefill must not be split
    (chunked prefill discards the sample of a partial prefill by rewinding its seeded generator, which vLLM's CPU
    generators cannot do: 0.32.0 raised 'CPU Generator does not use offset')."""
    lm, draw = engine
    prompts = [" ".join(TEXTS[i : i + 12]) for i in range(24)]  # ~70 tokens each, 24 x 8 requests
    ro = draw(lm, tok, prompts, 8, 4, temperature=1.0, seed=5)
    assert len(ro) == 192 and sum(map(len, ro.prompt_ids)) > 2 * 4096
    assert draw(lm, tok, prompts[:3], 8, 4, temperature=1.0, seed=5).response_ids == ro.response_ids[:24]
