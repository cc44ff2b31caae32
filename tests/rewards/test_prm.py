"""PRMReward: aggregations by hand, responses split into steps, the prm: spec, and dense per-step returns."""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.dense import step_returns, step_token_rewards, token_ends_for_spans
from rewardlab.rewards.prm import AGGREGATIONS, PRMReward, aggregate_steps, prm_from_spec, response_steps
from tests.models.test_prm import save_token_classifier


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("prm")
    save_token_classifier("gpt2", corpus, out, 2)
    return out


def test_aggregations_by_hand():
    p = [0.9, 0.5, 0.8]
    assert aggregate_steps(p, "min") == 0.5
    assert aggregate_steps(p, "last") == 0.8
    assert aggregate_steps(p, "product") == pytest.approx(0.36)
    assert aggregate_steps(p, "mean") == pytest.approx(2.2 / 3)
    assert aggregate_steps([0.9, math.nan], "last") == 0.9  # unscored (truncated) steps are left out
    assert math.isnan(aggregate_steps([math.nan], "min"))
    with pytest.raises(ValueError):
        aggregate_steps(p, "max")


def test_response_steps():
    assert response_steps("a\nb\n\nc", "\n") == ["a", "b", "c"]
    conv = [{"role": "assistant", "content": "a\nb"}, {"role": "tool", "content": "x"},
            {"role": "assistant", "content": "c"}]
    assert response_steps(conv, "\n") == ["a", "b", "c"]


def test_score_is_the_aggregate_of_step_scores(prm_dir):
    prompts, responses = ["help me", "a question"], ["the cat sat\non a mat\nyes", "no"]
    rewards = {a: PRMReward.from_pretrained(prm_dir, aggregate=a, device="cpu") for a in AGGREGATIONS}
    steps = rewards["min"].step_scores(prompts, responses)
    assert [len(s) for s in steps] == [3, 1]
    assert rewards["min"].step_scores(prompts, responses) == rewards["min"].score_steps(
        prompts, [["the cat sat", "on a mat", "yes"], ["no"]])
    for a, r in rewards.items():
        expected = torch.tensor([aggregate_steps(s, a) for s in steps])
        torch.testing.assert_close(r.score(prompts, responses), expected)
    s0 = steps[0]
    assert r.score(prompts, responses).shape == (2,)
    assert rewards["product"].score(prompts[:1], responses[:1]).item() == pytest.approx(math.prod(s0), rel=1e-6)
    assert rewards["min"].score(prompts[:1], responses[:1]).item() == pytest.approx(min(s0), rel=1e-6)


def test_truncated_steps_are_nan_and_counted(prm_dir):
    reward = PRMReward.from_pretrained(prm_dir, device="cpu", max_length=8)
    scores = reward.score_steps(["p"], [["the cat sat on a mat", "big red dog", "one two"]])[0]
    assert len(scores) == 3 and not math.isnan(scores[0]) and math.isnan(scores[-1])
    assert reward.encoder.stats.steps_dropped >= 1
    assert not math.isnan(reward.score(["p"], ["the cat sat on a mat\nbig red dog\none two"]).item())


def test_specs(prm_dir):
    from rewardlab.rewards.registry import load_reward

    r = load_reward(f"prm:{prm_dir}:product", device="cpu")
    assert isinstance(r, PRMReward) and r.aggregate == "product"
    assert load_reward(f"prm:{prm_dir}", device="cpu").aggregate == "min"
    assert isinstance(load_reward(str(prm_dir), device="cpu"), PRMReward)  # a bare token-classifier dir
    with pytest.raises(UserError, match="unknown aggregation 'max'"):
        prm_from_spec(f"prm:{prm_dir}:max")
    with pytest.raises(UserError, match="not a directory"):
        prm_from_spec("prm:/nonexistent/dir")


def test_step_returns_by_hand():
    r = step_token_rewards([1.0, -1.0], [1, 3], 5)
    assert r.tolist() == [0, 1, 0, -1, 0]
    assert step_returns([1.0, -1.0], [1, 3], 5).tolist() == [0, 0, -1, -1, 0]
    assert step_returns([1.0, -1.0], [1, 3], 5, gamma=0.5).tolist() == [0.375, 0.75, -0.5, -1, 0]
    assert step_token_rewards([0.5, 0.25], [2, 2], 3).tolist() == [0, 0, 0.75]  # two steps on one token add
    for bad in (([1.0], [5], 5), ([1.0, 2.0], [3, 1], 5), ([math.nan], [0], 1), ([1.0], [0, 1], 2)):
        with pytest.raises(ValueError):
            step_returns(*bad)


def test_token_ends_for_spans():
    from rewardlab.data.stepwise import step_spans

    text = "ab cd\nef"
    token_ends = [2, 5, 6, 8]  # "ab" " cd" "\n" "ef"
    spans = step_spans(text, "\n")
    assert spans == [(0, 5), (6, 8)]
    assert token_ends_for_spans(token_ends, [e for _, e in spans]) == [1, 3]
    assert token_ends_for_spans(token_ends, [4, 99]) == [1, 3]  # inside a token; past the end → the last
