"""BRME (Yan et al. 2024): r = λ·μ_{i*} + (1 − λ)·min_i μ_i with i* = argmin_i σ_i, per item. Checked by hand on
small tensors, through EnsembleReward on stub heads against a plain-Python computation (statistics module), and as
the spec `ensemble:brme=λ:...` of k-head tiny checkpoints in `score` (against numpy z-scores of each checkpoint's raw
outputs) and `optimize bon`."""

import json
import re
import statistics

import numpy as np
import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.base import member_names
from rewardlab.rewards.ensemble import EnsembleReward, brme_reward, head_gaussians
from rewardlab.rewards.registry import load_reward


def test_brme_reward_by_hand():
    # heads of two columns each, per item: (μ, σ) = A (2, 1), B (0.25, 0.25), C (4, 0) | A (2, 0), B (0, 1), C (3, 2)
    scores = torch.tensor([[1.0, 3.0, 0.0, 0.5, 4.0, 4.0],
                           [2.0, 2.0, -1.0, 1.0, 5.0, 1.0]])
    mu, sd = head_gaussians(scores, [2, 2, 2])
    torch.testing.assert_close(mu, torch.tensor([[2.0, 0.25, 4.0], [2.0, 0.0, 3.0]]))
    torch.testing.assert_close(sd, torch.tensor([[1.0, 0.25, 0.0], [0.0, 1.0, 2.0]]))
    # item 0: nominal = C (σ 0) = 4, worst μ = 0.25 -> 0.8·4 + 0.2·0.25 = 3.25
    # item 1: nominal = A (σ 0) = 2, worst μ = 0 -> 0.8·2 = 1.6
    torch.testing.assert_close(brme_reward(mu, sd, 0.8), torch.tensor([3.25, 1.6]))
    torch.testing.assert_close(brme_reward(mu, sd, 1.0), torch.tensor([4.0, 2.0]))  # the nominal head alone
    torch.testing.assert_close(brme_reward(mu, sd, 0.0), torch.tensor([0.25, 0.0]))  # worst case over heads
    # a tie in σ: the first head is nominal
    torch.testing.assert_close(brme_reward(torch.tensor([[1.0, 5.0]]), torch.tensor([[0.5, 0.5]]), 0.5),
                               torch.tensor([1.0]))


class Heads:
    """A stub k-output reward: column j = (j + 1) · (number of letters c_j in the response)."""

    def __init__(self, letters: str, name: str):
        self.letters, self.name, self.num_outputs = letters, name, len(letters)

    def score(self, prompts, responses):
        return torch.tensor([[(j + 1.0) * r.count(c) for j, c in enumerate(self.letters)] for r in responses])


def test_ensemble_brme_matches_a_plain_python_computation():
    heads = [Heads("ab", "h0"), Heads("cde", "h1"), Heads("ae", "h2")]
    ens = EnsembleReward(heads, method="brme", brme_lambda=0.3, standardize=False)
    texts = ["abcde", "aaab ccc", "eeee d", "bad cab", "xyz"]
    got = ens.score([""] * len(texts), texts).tolist()
    for t, g in zip(texts, got, strict=True):
        cols = [[(j + 1.0) * t.count(c) for j, c in enumerate(h.letters)] for h in heads]
        means = [statistics.fmean(c) for c in cols]
        stds = [statistics.pstdev(c) for c in cols]
        nominal = means[min(range(3), key=lambda i: (stds[i], i))]
        assert g == pytest.approx(0.3 * nominal + 0.7 * min(means), abs=1e-6)
    assert member_names(ens) == ["h0[0]", "h0[1]", "h1[0]", "h1[1]", "h1[2]", "h2[0]", "h2[1]"]
    torch.testing.assert_close(ens.aggregate_members(ens.score_members([""] * 5, texts)),
                               ens.score([""] * 5, texts))


def test_brme_spec_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "brme_mod.py").write_text("def f(prompt, response):\n    return 1.0\n")
    for spec, fragment in [("ensemble:brme:python:brme_mod:f", "needs its λ"),
                           ("ensemble:brme=1.5:python:brme_mod:f", "needs its λ in [0, 1]"),
                           ("ensemble:brme=0.5:python:brme_mod:f", "give one output")]:
        with pytest.raises(UserError, match=re.escape(fragment)):
            load_reward(spec, device="cpu")
    with pytest.raises(ValueError, match="brme needs"):
        EnsembleReward([Heads("ab", "h")], method="brme")


@pytest.fixture(scope="module")
def kheads(tmp_path_factory):
    """Three k-head tiny checkpoints (k = 2, 3, 2) and a pairs file."""
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer
    from tests.rewards.calibrate_world import WORDS, write_jsonl

    d = tmp_path_factory.mktemp("brme")
    rng = np.random.default_rng(0)
    rows = [{"prompt": " ".join(rng.choice(WORDS, 3)), "chosen": " ".join(rng.choice(WORDS, rng.integers(2, 9))),
             "rejected": " ".join(rng.choice(WORDS, rng.integers(2, 9)))} for _ in range(12)]
    write_jsonl(d / "pairs.jsonl", rows)
    tok = train_tiny_tokenizer([r["chosen"] for r in rows] + WORDS, vocab_size=96)
    for i, k in enumerate((2, 3, 2)):
        save_reward_model(tiny_reward_model(tok, seed=i, n_layer=1, n_embd=16, num_outputs=k), tok, d / f"k{i}",
                          manifest={"max_length": 64})
    return d, rows


def test_score_cli_with_a_brme_spec(cli, kheads, tmp_path):
    from rewardlab.rewards.model import ModelReward

    d, rows = kheads
    spec = f"ensemble:brme=0.6:{d / 'k0'},{d / 'k1'},{d / 'k2'}"
    code, _, err = cli("score", spec, d / "pairs.jsonl", "-o", tmp_path / "s.jsonl", "--reference",
                       d / "pairs.jsonl", "--device", "cpu")
    assert code == 0, err
    got = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    texts = [x for r in rows for x in (r["chosen"], r["rejected"])]
    prompts = [r["prompt"] for r in rows for _ in (0, 1)]
    # reference: each checkpoint's raw outputs, z-scored per column on the same responses (numpy, population std)
    z = []
    for i in range(3):
        raw = ModelReward.from_pretrained(d / f"k{i}", device="cpu").score(prompts, texts).numpy().astype(np.float64)
        z.append((raw - raw.mean(0)) / raw.std(0))
    mu = np.stack([h.mean(1) for h in z], 1)
    sd = np.stack([h.std(1) for h in z], 1)
    want = 0.6 * mu[np.arange(len(texts)), sd.argmin(1)] + 0.4 * mu.min(1)
    np.testing.assert_allclose([x for r in got for x in (r["chosen_score"], r["rejected_score"])], want, atol=1e-4)


def test_optimize_bon_with_a_brme_spec(cli, kheads, tmp_path, corpus):
    d, _ = kheads
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:4]))
    code, _, err = cli("optimize", "bon", "--policy", "tiny", "--prompts", tmp_path / "prompts.jsonl", "--reward",
                       f"ensemble:brme=0.5:{d / 'k0'},{d / 'k1'}", "--max-new-tokens", "4", "--n", "2",
                       "-o", tmp_path / "bon", "--device", "cpu")
    assert code == 0, err
    assert json.loads((tmp_path / "bon" / "summary.json").read_text())["n_prompts"] == 4
    code, _, err = cli("optimize", "bon", "--policy", "tiny", "--prompts", tmp_path / "prompts.jsonl", "--reward",
                       str(d / "k0"), "--reward", str(d / "k1"), "--aggregate", "brme", "-o", tmp_path / "b2")
    assert code == 2 and "ensemble:brme=" in err
