import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.ensemble import EnsembleReward, aggregate, ensemble_from_spec

A = FunctionReward(lambda p, r: float(len(r)), name="len")
B = FunctionReward(lambda p, r: 10.0 * r.count("a"), name="count_a")


def test_aggregate_by_hand():
    s = torch.tensor([[1.0, 3.0], [0.0, -2.0]])
    assert torch.allclose(aggregate(s, "mean"), torch.tensor([2.0, -1.0]))
    assert torch.allclose(aggregate(s, "wco"), torch.tensor([1.0, -2.0]))
    # population variance: 1 and 1
    assert torch.allclose(aggregate(s, "uwo", 0.5), torch.tensor([1.5, -1.5]))
    with pytest.raises(ValueError):
        aggregate(s, "median")


def test_members_are_standardized_on_the_reference_set():
    ens = EnsembleReward([A, B], method="wco")
    with pytest.raises(RuntimeError):
        ens.score(["p"], ["a"])
    ens.calibrate(["p"] * 2, ["a", "bbb"])  # A: 1, 3 -> mean 2, std 1; B: 10, 0 -> mean 5, std 5
    z = ens.score_members(["p", "p"], ["aa", "b"])
    assert torch.allclose(z, torch.tensor([[0.0, 3.0], [-1.0, -1.0]]))
    assert torch.allclose(ens.score(["p", "p"], ["aa", "b"]), torch.tensor([0.0, -1.0]))
    raw = EnsembleReward([A, B], method="mean", standardize=False)
    assert torch.allclose(raw.score(["p"], ["aa"]), torch.tensor([(2.0 + 20.0) / 2]))


def test_ensemble_spec():
    loaded = []

    def load(spec):
        loaded.append(spec)
        return {"a": A, "b": B}[spec]

    ens = ensemble_from_spec("ensemble:uwo=0.1:a,b", load)
    assert (ens.method, ens.uwo_lambda, loaded) == ("uwo", 0.1, ["a", "b"])
    assert ensemble_from_spec("ensemble:wco:a", load).method == "wco"
    for bad in ("ensemble:max:a", "ensemble:mean", "ensemble:uwo=x:a", "ensemble:mean:"):
        with pytest.raises(UserError):
            ensemble_from_spec(bad, load)


class TwoHeads:
    """A k = 2 output reward (one forward, two members): [len, 10 * count('a')]."""

    def score(self, prompts, responses):
        return torch.stack([A.score(prompts, responses), B.score(prompts, responses)], 1)


def test_multi_output_member_contributes_columns():
    ens = EnsembleReward([TwoHeads(), A], method="mean", standardize=False)
    assert torch.allclose(ens.raw_scores(["p"], ["aa"]), torch.tensor([[2.0, 20.0, 2.0]]))
    ens = EnsembleReward([TwoHeads()], method="wco")
    ens.calibrate(["p"] * 2, ["a", "bbb"])  # same stats as the two-member test above
    assert torch.allclose(ens.score(["p", "p"], ["aa", "b"]), torch.tensor([0.0, -1.0]))
