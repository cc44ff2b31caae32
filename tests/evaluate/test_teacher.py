"""Teacher runner: fake sampler (exact values) and the real sampler on a tiny causal LM."""

import numpy as np
import pytest

from rewardlab.evaluate import metrics as M
from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout, teacher_metrics
from rewardlab.models.generation import Rollout
from rewardlab.rewards.base import FunctionReward


def fake_sampler(model, tokenizer, prompts, num_samples, max_new_tokens, temperature, top_p, seed, batch_size,
                 max_prompt_length=None):
    """Response j of prompt p is 'p' followed by j 'x' characters (seed shifts nothing: deterministic)."""
    responses = [p + "x" * j for p in prompts for j in range(num_samples)]
    group = [i for i in range(len(prompts)) for _ in range(num_samples)]
    return Rollout(prompts=[prompts[g] for g in group], responses=responses, group=group,
                   prompt_ids=[[0]] * len(group), response_ids=[[0]] * len(group))


def test_teacher_metrics_with_fake_sampler():
    prompts = ["a", "bb", "ccc", "dddd", "eeeee"]
    cfg = SamplingConfig(num_samples=3, batch_size=6)  # 2 prompts per chunk -> 3 chunks, groups re-offset
    ro = sample_rollout(None, None, prompts, cfg, sampler=fake_sampler)
    assert ro.group == [i for i in range(5) for _ in range(3)]
    assert ro.responses[3:6] == ["bb", "bbx", "bbxx"]
    # proxy: length of the response; gold: number of 'x' minus 10 x (prompt length); independent computation below
    proxy = FunctionReward(lambda p, r: float(len(r)))
    gold = FunctionReward(lambda p, r: float(r.count("x") ** 2) - 10 * len(p))
    out = teacher_metrics(proxy, prompts, None, None, gold=gold, config=cfg, sampler=fake_sampler)
    r = np.array([len(p) + j for p in prompts for j in range(3)], dtype=float)
    g = np.repeat(np.arange(5), 3)
    assert out["reward_variance"] == pytest.approx(M.reward_variance(r, g))
    # by hand: r = len(p) + j, j in {0,1,2}: global var of r = var(len p) + var(j) = 2 + 2/3 = 8/3,
    # within-prompt var = 2/3 -> RV = (2/3) / (8/3) = 0.25
    assert out["reward_variance"] == pytest.approx(0.25)
    assert out["on_policy_accuracy"] == 1.0  # same within-prompt order as gold
    assert out["n_prompts"] == 5 and out["n_responses"] == 15
    assert len(out["reward_variance_per_prompt"]) == 5


def test_teacher_metrics_real_sampler_tiny_lm():
    from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

    tok = train_tiny_tokenizer(["hello world", "the cat sat on the mat", "a b c d e f g"] * 20, vocab_size=300)
    lm = tiny_causal_lm(tok, seed=0)
    prompts = ["hello", "the cat", "a b"]
    cfg = SamplingConfig(num_samples=4, max_new_tokens=6, seed=3, batch_size=8)
    ro1 = sample_rollout(lm, tok, prompts, cfg)
    ro2 = sample_rollout(lm, tok, prompts, cfg)
    assert ro1.responses == ro2.responses and len(ro1) == 12
    assert ro1.group == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    reward = FunctionReward(lambda p, r: float(len(r)))
    out = teacher_metrics(reward, rollout=ro1)
    lengths = np.array([len(x) for x in ro1.responses], dtype=float)
    assert out["reward_variance"] == pytest.approx(M.reward_variance(lengths, ro1.group))
    assert "on_policy_accuracy" not in out
