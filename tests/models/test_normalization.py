"""The manifest's ``normalization`` record: mean and population std of reference scores (per output too), and the
reference sets that cannot standardize anything refused."""

from __future__ import annotations

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.models.normalization import normalization_record


def test_record_by_hand():
    rec = normalization_record(torch.tensor([1.0, 2.0, 3.0, 4.0]), {"x": 1}, "here")
    assert rec == {"mean": 2.5, "std": pytest.approx(1.25 ** 0.5), "n": 4, "source": {"x": 1}}
    # two outputs: the scalar is the row mean (what the server serves), plus per-output stats
    rec = normalization_record(torch.tensor([[0.0, 2.0], [2.0, 6.0]]), {}, "here")
    assert (rec["mean"], rec["std"]) == (2.5, pytest.approx(1.5))
    assert rec["outputs"] == {"mean": [1.0, 4.0], "std": [1.0, 2.0]}


@pytest.mark.parametrize("scores, fragment", [([1.0], "at least 2"), ([3.0, 3.0, 3.0], "zero std"),
                                              ([1.0, float("nan")], "not finite")])
def test_record_refuses_unusable_reference_sets(scores, fragment):
    with pytest.raises(UserError, match=fragment):
        normalization_record(torch.tensor(scores), {}, "here")
