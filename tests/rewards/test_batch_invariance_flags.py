"""Which rewards declare that their score depends on the batch (the server then never merges requests for them)."""

import torch

from rewardlab.rewards.base import FunctionReward, is_batch_invariant
from rewardlab.rewards.ensemble import EnsembleReward
from rewardlab.rewards.judge import JudgeConfig, JudgeReward
from rewardlab.rewards.multiobjective import DirectionalReward
from rewardlab.rewards.shaping import NormalizedReward, PARReward


def test_batch_dependence_is_declared_and_inherited():
    plain = FunctionReward(lambda p, r: float(len(r)))
    running = NormalizedReward(plain, mode="running")
    assert is_batch_invariant(plain) and is_batch_invariant(NormalizedReward(plain, mean=0.0, std=1.0))
    assert not is_batch_invariant(running)
    assert not is_batch_invariant(EnsembleReward([plain, running], standardize=False))
    assert is_batch_invariant(EnsembleReward([plain, plain], standardize=False))
    assert not is_batch_invariant(PARReward(running))
    assert not is_batch_invariant(DirectionalReward(EnsembleReward([running]), [1.0]))
    others = JudgeReward(backend=object(), config=JudgeConfig(mode="pairwise", against="others"), progress=False)
    pointwise = JudgeReward(backend=object(), config=JudgeConfig(mode="pointwise"), progress=False)
    assert not is_batch_invariant(others) and is_batch_invariant(pointwise)


def test_running_normalization_really_depends_on_the_batch():
    """The declaration is true: the same item scores differently after other items were scored."""
    r = NormalizedReward(FunctionReward(lambda p, y: float(len(y))), mode="running", clip=None)
    first = r.score(["q", "q"], ["a", "abcd"])
    r.score(["q"] * 3, ["abcdefgh"] * 3)
    assert not torch.allclose(r.score(["q", "q"], ["a", "abcd"]), first)
