"""Preference strength (Secrets of RLHF II, Eq. 4), the flag rule, what each action writes, and the smoothed pair's
two weighted rows against the paper's label-smoothed loss (Eq. 5) with the adaptive margin (Eq. 6), by hand."""

import math

import numpy as np
import pytest
import torch

from rewardlab.rewards.strength import flag_pairs, plan, preference_strength, written_rows
from rewardlab.train.losses import bt_loss


def test_strength_by_hand():
    # 3 RMs, 2 pairs: pair 0 differences 1, 2, 6; pair 1: -1, -1, -1
    d = np.array([[1.0, -1.0], [2.0, -1.0], [6.0, -1.0]])
    mean, std = preference_strength(d)
    assert mean.tolist() == [3.0, -1.0]
    # population std (1/M): pair 0 deviations -2, -1, 3 -> (4 + 1 + 9) / 3
    assert std[0] == pytest.approx(math.sqrt(14 / 3))
    assert std[1] == 0.0
    assert std[0] == pytest.approx(np.std(d[:, 0], ddof=0))  # numpy's population std agrees


def test_one_model_has_zero_spread_and_bad_shapes_are_refused():
    mean, std = preference_strength(np.array([[0.5, -2.0]]))
    assert mean.tolist() == [0.5, -2.0] and std.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        preference_strength(np.zeros(3))


def test_flag_by_threshold_and_by_fraction():
    mean = np.array([0.3, -0.1, 0.0, -2.0, 1.0])
    assert flag_pairs(mean).tolist() == [False, True, False, True, False]  # strictly below 0
    assert flag_pairs(mean, threshold=0.5).tolist() == [True, True, True, True, False]
    assert flag_pairs(mean, fraction=0.4).tolist() == [False, True, False, True, False]  # the 2 lowest
    assert flag_pairs(mean, fraction=0.0).sum() == 0
    assert flag_pairs(np.array([1.0, 1.0, 1.0]), fraction=0.34).tolist() == [True, False, False]  # ties: file order


MEAN = np.array([2.0, -1.5, 0.5])
STD = np.array([0.1, 0.2, 0.3])
FLAGGED = np.array([False, True, False])
RAW = [{"prompt": "p0", "chosen": "a", "rejected": "b", "id": "0", "extra": [1]},
       {"prompt": "p1", "chosen": "c", "rejected": "d", "id": "1", "weight": 2.0, "margin": 0.7},
       {"prompt": "p2", "chosen": "e", "rejected": "f", "id": "2"}]


def test_flip_writes_exactly():
    rows = written_rows(RAW, plan(MEAN, STD, FLAGGED, "flip"), margin_scale=None)
    assert rows == [
        {**RAW[0], "strength_mean": 2.0, "strength_std": 0.1, "strength_flagged": False},
        {"prompt": "p1", "chosen": "d", "rejected": "c", "id": "1", "weight": 2.0, "margin": -0.7,
         "strength_mean": 1.5, "strength_std": 0.2, "strength_flagged": True},
        {**RAW[2], "strength_mean": 0.5, "strength_std": 0.3, "strength_flagged": False}]
    assert RAW[1]["chosen"] == "c"  # the input rows are not modified


def test_drop_and_report_write_exactly():
    dropped = written_rows(RAW, plan(MEAN, STD, FLAGGED, "drop"), margin_scale=None)
    assert [r["id"] for r in dropped] == ["0", "2"] and dropped[1]["strength_mean"] == 0.5
    kept = written_rows(RAW, plan(MEAN, STD, FLAGGED, "report"), margin_scale=2.0)
    assert [(r["chosen"], r["margin"], r["strength_mean"], r["strength_flagged"]) for r in kept] == [
        ("a", 4.0, 2.0, False), ("c", -3.0, -1.5, True), ("e", 1.0, 0.5, False)]


def test_smooth_writes_two_weighted_rows():
    rows = written_rows(RAW, plan(MEAN, STD, FLAGGED, "smooth", smoothing=0.25), margin_scale=1.0)
    assert [r["id"] for r in rows] == ["0", "1", "1", "2"]
    a, b = rows[1], rows[2]
    assert (a["chosen"], a["rejected"], a["weight"], a["margin"]) == ("c", "d", 1.5, -1.5)   # (1 − ε)·2
    assert (b["chosen"], b["rejected"], b["weight"], b["margin"]) == ("d", "c", 0.5, 1.5)    # ε·2, swapped
    assert "weight" not in rows[0] and rows[0]["margin"] == 2.0


def test_smoothed_rows_sum_to_the_papers_loss_by_hand():
    """Rows (c ≻ r, weight (1−ε)w, margin m) and (r ≻ c, weight εw, margin −m) under train's loss
    w·(−log σ(r_c − r_r − margin)) sum to w·[−(1−ε) log σ(Δ − m) − ε log σ(−(Δ − m))] (Eq. 5 with Eq. 6's margin)."""
    eps, w, m = 0.2, 2.0, -1.5
    rows = written_rows([{"prompt": "p", "chosen": "c", "rejected": "r", "weight": w}],
                        plan(np.array([m]), np.array([0.0]), np.array([True]), "smooth", eps), margin_scale=1.0)
    r = {"c": 0.4, "r": 1.1}  # the RM's scores; Δ = −0.7, Δ − m = 0.8
    total = sum(row["weight"] * bt_loss(torch.tensor([r[row["chosen"]]]), torch.tensor([r[row["rejected"]]]),
                                        margin=row["margin"]).item() for row in rows)

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    by_hand = w * (-(1 - eps) * log_sigmoid(0.8) - eps * log_sigmoid(-0.8))
    assert total == pytest.approx(by_hand, rel=1e-6)
    # and it is train's own label-smoothed loss on the single pair
    smoothed = bt_loss(torch.tensor([0.4]), torch.tensor([1.1]), margin=m, label_smoothing=eps).item()
    assert total == pytest.approx(w * smoothed, rel=1e-6)


def test_adaptive_margin_loss_by_hand():
    """Eq. 6: −log σ(r_c − r_r − μ̂); with μ̂ = 1 and r_c − r_r = 1.5, −log σ(0.5) = log(1 + e^−0.5)."""
    loss = bt_loss(torch.tensor([2.0]), torch.tensor([0.5]), margin=torch.tensor([1.0])).item()
    assert loss == pytest.approx(math.log(1 + math.exp(-0.5)), rel=1e-6)


def test_unknown_action_is_refused():
    with pytest.raises(ValueError):
        plan(MEAN, STD, FLAGGED, "relabel")
