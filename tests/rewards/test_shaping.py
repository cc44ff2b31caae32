import math

import numpy as np
import pytest
import torch

from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.shaping import (
    NormalizedReward,
    PARReward,
    RunningMoments,
    calibrate,
    normalize_clip,
    par_shape,
)

LENGTH = FunctionReward(lambda p, r: float(len(r)), name="length")


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_normalize_clip_by_hand():
    r = torch.tensor([0.0, 2.0, 10.0])
    assert torch.allclose(normalize_clip(r, 2.0, 2.0, eps=0.0), torch.tensor([-1.0, 0.0, 4.0]))
    assert torch.allclose(normalize_clip(r, 2.0, 2.0, clip=3.0, eps=0.0), torch.tensor([-1.0, 0.0, 3.0]))


def test_running_moments_match_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, size=s) for s in (5, 1, 17, 8)]
    m = RunningMoments()
    for b in batches:
        m.update(torch.tensor(b))
    allv = np.concatenate(batches)
    assert m.count == len(allv)
    assert m.mean.item() == pytest.approx(allv.mean())
    assert m.std.item() == pytest.approx(allv.std())


def test_fixed_normalization_from_calibration():
    nr = NormalizedReward(LENGTH, mode="fixed", clip=1.5)
    with pytest.raises(RuntimeError):
        nr.score(["p"], ["ab"])
    nr.calibrate(["p"] * 4, ["a", "abc", "ab", "abcd"])  # lengths 1..4: mean 2.5, pop std sqrt(1.25)
    s = nr.score(["p", "p", "p"], ["abcd", "a" * 10, ""])
    sd = math.sqrt(1.25)
    assert torch.allclose(s, torch.tensor([1.5 / sd, 1.5, -1.5]), atol=1e-6)
    given = NormalizedReward(LENGTH, mean=1.0, std=2.0, clip=None)
    assert torch.allclose(given.score(["p"], ["abcde"]), torch.tensor([2.0]))


def test_running_normalization_uses_all_seen_rewards():
    nr = NormalizedReward(LENGTH, mode="running", clip=None, eps=0.0)
    nr.score(["p", "p"], ["a", "abc"])  # seen: 1, 3
    s = nr.score(["p"], ["ab"])  # seen: 1, 3, 2 -> mean 2 -> z = 0
    assert s.item() == pytest.approx(0.0)
    s = nr.score(["p"], ["abcdef"])  # seen 1,3,2,6: mean 3, pop var (4+0+1+9)/4 = 3.5
    assert s.item() == pytest.approx(3 / math.sqrt(3.5))


def test_par_shape_by_hand():
    r = torch.tensor([1.0, 0.0])
    ref = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    assert torch.allclose(par_shape(r, ref), torch.tensor([(sig(1) + sig(-1)) / 2, 0.5]))


def test_par_reward_with_references_and_calibration():
    par = PARReward(LENGTH, references={"x": ["ab"], "y": ["a", "abcd"]}, max_refs=None)
    s = par.score(["x", "y", "x"], ["abcd", "abc", "ab"])
    assert torch.allclose(s, torch.tensor([sig(2), (sig(2) + sig(-1)) / 2, 0.5]))
    with pytest.raises(KeyError):
        par.score(["z"], ["a"])
    par1 = PARReward(LENGTH)  # M = 1: the first reference sample of each prompt
    calibrate(par1, ["x", "x", [{"role": "user", "content": "hi"}]], ["abc", "a", ""])
    s = par1.score(["x", [{"role": "user", "content": "hi"}]], ["a", "aa"])
    assert torch.allclose(s, torch.tensor([sig(-2), sig(2)]))
    # bounded in (0, 1) however large the raw reward gets
    assert 0 < par1.score(["x"], ["a" * 1000]).item() <= 1


def test_calibrate_chains_through_wrappers():
    inner = NormalizedReward(LENGTH, mode="fixed", clip=None)
    outer = PARReward(inner)
    calibrate(outer, ["x", "x"], ["a", "abc"])
    assert inner.mean.item() == pytest.approx(2.0)
    assert outer.score(["x"], ["a"]).item() == pytest.approx(0.5)  # first reference is "a" itself
