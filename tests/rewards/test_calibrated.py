"""PPO-C's calibrated reward (rewards/calibrated.py) against hand computations, and its spec."""

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward, is_batch_invariant
from rewardlab.rewards.calibrated import PPOCReward, calibrated_reward
from rewardlab.rewards.registry import load_reward


def answer_length(prompt, response):
    return float(len(response))


LENGTH = FunctionReward(answer_length)


def test_calibrated_reward_by_hand():
    r = torch.tensor([4.0, 2.0, 6.0])
    out = calibrated_reward(r, torch.tensor([8.0, 2.0, 5.0]), 3.1, w=2.0)
    # 4 + 2·(4 − 3.1)·(0.8 − 0.5) = 4.54; 2 + 2·(2 − 3.1)·(0.2 − 0.5) = 2.66; s = 0.5 leaves 6
    assert out.tolist() == pytest.approx([4.54, 2.66, 6.0])


def test_running_mean_confidence_and_missing_statements_by_hand():
    ppoc = PPOCReward(LENGTH, w=2.0, alpha=0.1, mean=3.0)
    out = ppoc.score(["p"] * 3, ["abcd Confidence: 8", "ab\nconfidence: 2/10.", "abcdef"])
    # base rewards of the answers without the statement: 4, 2, 6; Δr_1 = 0.1·mean(4, 2, 6) + 0.9·3 = 3.1
    assert ppoc.running_mean == pytest.approx(3.1)
    assert out.tolist() == pytest.approx([4.54, 2.66, 6.0])  # no statement: the base reward, unadjusted
    assert ppoc.missing == 1 and ppoc.scored == 3
    assert ppoc.batch_metrics == pytest.approx({"running_mean": 3.1, "confidence_missing": 1 / 3,
                                                "confidence_mean": 5.0})
    out = ppoc.score(["p"], ["a Confidence: 10"])  # Δr_2 = 0.1·1 + 0.9·3.1 = 2.89; 1 + 2·(1 − 2.89)·0.5
    assert ppoc.running_mean == pytest.approx(2.89)
    assert out.tolist() == pytest.approx([1 - 1.89])
    assert ppoc.score(["p"], ["abc Confidence: 42"]).tolist() == pytest.approx(  # clipped to 10
        [3 + 2 * (3 - (0.1 * 3 + 0.9 * 2.89)) * 0.5])
    assert not is_batch_invariant(ppoc)


def test_running_mean_starts_from_calibration_or_the_first_batch():
    ppoc = PPOCReward(LENGTH, alpha=0.5)
    ppoc.calibrate(["p", "p"], ["aa Confidence: 9", "aaaa"])  # Δr_0 = mean(2, 4) = 3 (statements stripped)
    assert ppoc.running_mean == pytest.approx(3.0)
    fresh = PPOCReward(LENGTH, w=1.0, alpha=0.5)
    out = fresh.score(["p", "p"], ["aaaaaa Confidence: 10", "aa Confidence: 0"])  # Δr_1 = mean(6, 2) = 4
    assert fresh.running_mean == pytest.approx(4.0)
    assert out.tolist() == pytest.approx([6 + 2 * 0.5, 2 + (-2) * (-0.5)])


def test_running_mean_starts_from_a_checkpoints_stored_mean():
    class Stored(FunctionReward):
        normalization = {"mean": 1.5, "std": 2.0, "n": 10}

    ppoc = PPOCReward(Stored(answer_length))
    ppoc.calibrate(["p"], ["aaaa"])  # the stored mean wins over initial-policy samples (the authors' Δr_0)
    assert ppoc.running_mean == 1.5
    assert PPOCReward(Stored(answer_length), mean=0.5).running_mean == 0.5


def test_conversation_responses_read_the_last_message():
    ppoc = PPOCReward(LENGTH, mean=0.0, alpha=1.0)
    conv = [{"role": "assistant", "content": "abc Confidence: 10"}]
    base = FunctionReward(lambda p, y: float(len(y[-1]["content"])))
    ppoc.base = base
    assert ppoc.score(["p"], [conv]).tolist() == pytest.approx([3 + 2 * (3 - 3) * 0.5])


def test_spec_forms(tmp_path):
    r = load_reward(f"ppoc:w=1,alpha=0.5,mean=2:python:{__name__}:answer_length")
    assert isinstance(r, PPOCReward) and (r.w, r.alpha, r.running_mean) == (1.0, 0.5, 2.0)
    d = load_reward(f"ppoc:python:{__name__}:answer_length")
    assert (d.w, d.alpha, d.running_mean) == (2.0, 0.1, None)
    assert d.score(["p"], ["abcd Confidence: 10"]).tolist() == pytest.approx([4.0])  # first batch: r = Δr_1
    for bad in ("ppoc:", "ppoc:w=1:", "ppoc:beta=1:python:x:y", "ppoc:alpha=0:python:x:y", "ppoc:w=a:python:x:y"):
        with pytest.raises(UserError):
            load_reward(bad)


def test_in_an_optimize_loop(tokenizer, corpus, tmp_path):
    """The loop calibrates Δr_0 on initial-policy samples, folds each rollout in and logs what the reward saw."""
    import json

    from rewardlab.models.tiny import tiny_causal_lm
    from rewardlab.optimize.raft import RAFTArgs, train_raft

    ppoc = PPOCReward(LENGTH, w=2.0, alpha=0.1)
    args = RAFTArgs(steps=1, k=2, prompts_per_step=4, max_new_tokens=6, eval_prompts=2, eval_samples=2)
    train_raft(tiny_causal_lm(tokenizer, seed=0), tokenizer, ppoc, corpus[:8], args, output_dir=tmp_path,
               progress=False)
    train = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    # the tiny LM states no confidence: every reward is the base reward, and the log says so
    assert train[0]["reward_confidence_missing"] == 1.0 and ppoc.missing == ppoc.scored > 0
    assert isinstance(train[0]["reward_running_mean"], float)
