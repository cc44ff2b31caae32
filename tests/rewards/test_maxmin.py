"""`maxmin:` (rewards/maxmin.py): the worst group's reward is a batch-level min over group means, computed by hand
(and shown to differ from the per-item min), standardized on the calibration samples, loaded from specs (members,
a mixture's heads), and refused where it cannot mean anything."""

import numpy as np
import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.models.mixture import MixtureRewardModel
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.rewards.base import FunctionReward, is_batch_invariant
from rewardlab.rewards.maxmin import MaxMinReward, worst_group
from rewardlab.rewards.personalized import MixtureReward
from rewardlab.rewards.registry import load_reward

TABLE = {"a": (1.0, 0.0), "b": (3.0, -2.0), "c": (2.0, 5.0)}  # response -> (group 0 reward, group 1 reward)


def members():
    return [FunctionReward(lambda p, y: TABLE[y][0]), FunctionReward(lambda p, y: TABLE[y][1])]


def test_worst_group_reward_by_hand():
    r = MaxMinReward(members(), standardize=False)
    got = r.score(["q"] * 3, ["a", "b", "c"])
    # group means: (1 + 3 + 2) / 3 = 2 and (0 − 2 + 5) / 3 = 1 -> group 1 is the worst; its rewards 0, −2, 5
    assert got.tolist() == [0.0, -2.0, 5.0]
    assert got.mean().item() == pytest.approx(1.0)  # = min over groups of the group means
    assert r.batch_metrics == {"group_0": pytest.approx(2.0), "group_1": pytest.approx(1.0), "worst_group": 1}
    per_item_min = [min(TABLE[y]) for y in "abc"]  # [0, −2, 2]: a different objective (mean 0, not 1)
    assert got.tolist() != per_item_min
    # the batch decides: with 'c' alone, group 0 is the worst (2 < 5)
    assert r.score(["q"], ["c"]).tolist() == [2.0] and r.batch_metrics["worst_group"] == 0
    assert not is_batch_invariant(r)
    k, means = worst_group(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    assert k == 0 and means.tolist() == [1.0, 1.0]  # a tie: the lower index


def test_groups_are_standardized_on_the_calibration_samples():
    r = MaxMinReward(members())
    with pytest.raises(UserError, match="standardized on the initial policy"):
        r.score(["q"], ["a"])
    ref = ["a", "b", "c", "a"]
    r.calibrate(["q"] * 4, ref)
    raw = np.array([TABLE[y] for y in ref])
    mu, sd = raw.mean(0), raw.std(0)  # population std, as numpy's default
    torch.testing.assert_close(r.means, torch.tensor(mu, dtype=torch.float32))
    torch.testing.assert_close(r.stds, torch.tensor(sd, dtype=torch.float32))
    batch = ["b", "c"]
    z = (np.array([TABLE[y] for y in batch]) - mu) / sd
    k = int(z.mean(0).argmin())
    torch.testing.assert_close(r.score(["q"] * 2, batch), torch.tensor(z[:, k], dtype=torch.float32))
    assert r.batch_metrics["worst_group"] == k


def test_flat_group_and_single_group_are_refused():
    flat = MaxMinReward([FunctionReward(lambda p, y: 1.0), FunctionReward(lambda p, y: len(y))], names=["one", "len"])
    with pytest.raises(UserError, match="one"):
        flat.calibrate(["q", "q"], ["a", "bb"])
    MaxMinReward(flat.members, standardize=False).calibrate(["q", "q"], ["a", "bb"])  # raw: no division, allowed
    with pytest.raises(UserError, match="one group"):
        MaxMinReward([FunctionReward(lambda p, y: 1.0)], standardize=False).score(["q"], ["a"])


def test_specs_and_a_mixtures_heads(tmp_path, monkeypatch, tokenizer):
    (tmp_path / "mm_mod.py").write_text("def f(p, y):\n    return float(len(y))\n\n"
                                        "def g(p, y):\n    return -2.0 * len(y)\n")
    monkeypatch.chdir(tmp_path)
    r = load_reward("maxmin=raw:python:mm_mod:f,python:mm_mod:g")
    assert isinstance(r, MaxMinReward) and not r.standardize
    # f means 2, g means −4: the worst is g
    assert r.score(["q", "q"], ["a", "bbb"]).tolist() == [-2.0, -6.0] and r.group_names == ["python:mm_mod:f",
                                                                                          "python:mm_mod:g"]
    assert load_reward("maxmin:python:mm_mod:f,python:mm_mod:g").standardize
    for bad in ("maxmin=min:python:mm_mod:f", "maxmin:"):
        with pytest.raises(UserError, match="expected maxmin"):
            load_reward(bad)
    mix = MixtureReward(MixtureRewardModel(tiny_reward_model(tokenizer, num_outputs=3, seed=0)), tokenizer)
    m = MaxMinReward([mix], names=["mix"], standardize=False)
    prompts, responses = ["q one", "q two"], [" a b c", " d"]
    heads = mix.score_heads(prompts, responses)
    torch.testing.assert_close(m.group_scores(prompts, responses), heads)
    assert m.group_names == ["mix[0]", "mix[1]", "mix[2]"]
    torch.testing.assert_close(m.score(prompts, responses), heads[:, int(heads.mean(0).argmin())])
