"""Metric functions against hand-computed values (derivations in comments) and scipy where independent."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from rewardlab.evaluate import calibration as C
from rewardlab.evaluate import metrics as M


def test_pairwise_accuracy_ties_wrong():
    # Δ = [1, 0, -2, 3]: two strict wins out of four, one tie
    c, r = [1.0, 2.0, 3.0, 4.0], torch.tensor([0.0, 2.0, 5.0, 1.0])
    assert M.pairwise_accuracy(c, r) == 0.5
    assert M.tie_rate(c, r) == 0.25
    assert M.off_policy_accuracy(c, r) == 0.5
    assert math.isnan(M.pairwise_accuracy([], []))
    with pytest.raises(ValueError):
        M.pairwise_accuracy([1.0, 2.0], [1.0])


def test_subset_accuracy():
    out = M.subset_accuracy([1, 2, 3, 4], [0, 2, 5, 1], ["a", "a", "b", None])
    assert out["a"] == {"accuracy": 0.5, "tie_rate": 0.5, "n": 2}
    assert out["b"] == {"accuracy": 0.0, "tie_rate": 0.0, "n": 1}
    assert out["all"] == {"accuracy": 1.0, "tie_rate": 0.0, "n": 1}


def test_rb1_constants_match_reference():
    # allenai/reward-bench rewardbench/constants.py @ 05a9005: math-prm up-weighted to 984 = 6 code
    # subsets x 164
    assert M.RB1_EXAMPLE_COUNTS["math-prm"] == 984 == 6 * M.RB1_EXAMPLE_COUNTS["hep-cpp"]
    assert sum(len(v) for v in M.RB1_SECTIONS.values()) == 23 == len(M.RB1_EXAMPLE_COUNTS)
    assert set(M.RB1_SECTIONS) == {"Chat", "Chat Hard", "Safety", "Reasoning"}


def test_section_scores_default_rb1_weights():
    scores = {"math-prm": 1.0, "hep-cpp": 0.5, "hep-go": 0.0, "alpacaeval-easy": 0.8, "custom": 0.3}
    out = M.section_scores(scores)
    # Reasoning = (1*984 + 0.5*164 + 0*164) / (984 + 164 + 164) = 1066 / 1312
    assert out["sections"]["Reasoning"] == pytest.approx(1066 / 1312)
    assert out["sections"]["Chat"] == pytest.approx(0.8)
    assert set(out["sections"]) == {"Reasoning", "Chat"}
    assert out["overall"] == pytest.approx((1066 / 1312 + 0.8) / 2)
    assert out["unsectioned"] == ["custom"]


def test_section_scores_user_map_falls_back_to_counts():
    out = M.section_scores({"x": 1.0, "y": 0.0, "z": 0.5}, sections={"S": ["x", "y"], "T": ["z"]},
                           weights={"x": 3}, counts={"y": 1, "x": 100})
    # weights win over counts for x (3), y uses its count (1): (1*3 + 0*1) / 4
    assert out["sections"] == {"S": 0.75, "T": 0.5}
    assert out["overall"] == pytest.approx(0.625)


def test_calibration_hand_computed():
    p = np.array([0.5, 0.72, 0.28, 0.92])
    # conf = [.5, .72, .72, .92]; correct (chosen wins) = [tie->0, 1, 0, 1]
    # bins over [0.5, 1] of width .05: {0.5} -> bin0 gap .5; {.72, .72} -> bin4 acc .5 gap .22; {.92}
    # -> bin8 gap .08
    assert C.expected_calibration_error(p) == pytest.approx((0.5 + 2 * 0.22 + 0.08) / 4)
    rd = C.reliability_diagram(p)
    assert rd["count"] == [1, 0, 0, 0, 2, 0, 0, 0, 1, 0]
    assert rd["accuracy"][4] == 0.5 and rd["confidence"][4] == pytest.approx(0.72)
    assert C.brier_score(p) == pytest.approx((0.25 + 0.28**2 + 0.72**2 + 0.08**2) / 4)
    # explicit labels: p=.81 predicts "first wins" but y=0 -> wrong; p=.31 predicts second -> right
    assert C.expected_calibration_error([0.81, 0.31], [0, 0]) == pytest.approx((0.81 + (1 - 0.69)) / 2)
    assert C.reliability_diagram([1.0])["count"][-1] == 1  # right edge in the last bin


def test_preference_probs_and_nll():
    d = np.array([0.0, math.log(3), -math.log(3)])
    assert C.preference_probs(d) == pytest.approx([0.5, 0.75, 0.25])
    assert C.preference_probs(d, temperature=2.0)[1] == pytest.approx(1 / (1 + 3**-0.5))
    assert C.preference_nll(d) == pytest.approx((math.log(2) + math.log(4 / 3) + math.log(4)) / 3)
    assert C.preference_nll([1000.0, -1000.0]) == pytest.approx(500.0)  # stable, no overflow


def test_fit_temperature_closed_form():
    # Δ = [2, 2, 2, -2], all labels 1. With a = 2/T, dNLL/da ∝ -3σ(-a) + σ(a) = 0  =>  σ(a) = 3/4, a = ln 3
    t = C.fit_temperature([2.0, 2.0, 2.0, -2.0])
    assert t == pytest.approx(2 / math.log(3), rel=1e-4)
    assert C.fit_temperature([1.0, 2.0]) == pytest.approx(1e-2, rel=1e-3)  # separable -> lower bound
    cal = C.calibration([2.0, 2.0, 2.0, -2.0], temperature=t)
    assert cal["nll"] < C.calibration([2.0, 2.0, 2.0, -2.0])["nll"]


def test_rank_and_spearman_against_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=40).astype(float)  # many ties
    y = x + rng.normal(size=40)
    assert M.rankdata(x) == pytest.approx(scipy.stats.rankdata(x))
    assert M.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
    assert M.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y).statistic)
    assert math.isnan(M.spearman([1, 1, 1], [1, 2, 3]))


def test_length_bias():
    c, r = [3, 1, 2, 5], [1, 2, 2, 4]
    lc, lr = [10, 5, 7, 7], [5, 9, 7, 3]
    out = M.length_bias(c, r, lc, lr)
    # Δ = [2, -1, 0, 1]; chosen shorter: pair 1 (wrong); chosen longer: pairs 0, 3 (both right); pair 2
    # equal
    assert out["acc_chosen_shorter"] == 0.0 and out["n_chosen_shorter"] == 1
    assert out["acc_chosen_longer"] == 1.0 and out["n_chosen_longer"] == 2
    assert out["spearman"] == pytest.approx(scipy.stats.spearmanr(c + r, lc + lr).statistic)


def test_ensemble_disagreement():
    assert M.ensemble_disagreement([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]) == pytest.approx([math.sqrt(2 /
    3), 0])
    assert M.ensemble_disagreement([[1.0, 3.0]], ddof=1) == pytest.approx([math.sqrt(2)])
    # Δ rows [1,3], [2,2], [0,-4]: std [1, 0, 2]; mean Δ [2, 2, -2] -> error [0, 0, 1]
    # pearson: xc = [0,-1,1], yc = [-1/3,-1/3,2/3]: cov 1, Σxc² 2, Σyc² 2/3 -> 1/sqrt(4/3) = sqrt(3)/2
    out = M.ensemble_pair_disagreement([[1, 3], [2, 2], [0, -4]], np.zeros((3, 2)))
    assert out["std"] == pytest.approx([1, 0, 2])
    assert out["corr_with_error"] == pytest.approx(math.sqrt(3) / 2)
    assert out["error_rate"] == pytest.approx(1 / 3)
    # errors of an explicit ensemble Δ (e.g. WCO = min over members: [1, 2, -4]) -> same errors here;
    # with Δ_ens = [-1, 2, 3] the error is on the pair with std 1: xc = [0,-1,1], yc = [2/3,-1/3,-1/3] -> 0
    out = M.ensemble_pair_disagreement([[1, 3], [2, 2], [0, -4]], np.zeros((3, 2)), ensemble_delta=[-1, 2, 3])
    assert out["corr_with_error"] == pytest.approx(0.0, abs=1e-12) and out["error_rate"] == pytest.approx(1 / 3)


def test_reward_variance_hand_computed():
    # [[0,2],[1,1]]: global mean 1, population std sqrt(.5) -> z = [-√2, √2, 0, 0]; prompt vars 2 and 0
    # -> RV 1
    assert M.per_prompt_reward_variance([[0.0, 2.0], [1.0, 1.0]]) == pytest.approx([2.0, 0.0])
    assert M.reward_variance([[0.0, 2.0], [1.0, 1.0]]) == pytest.approx(1.0)
    # unequal groups: r = [0,2,4 | 1,3]: mean 2, var 2; z = [-√2,0,√2 | -1/√2, 1/√2] -> vars 4/3, 1/2
    # -> RV 11/12
    r, g = torch.tensor([0.0, 2.0, 4.0, 1.0, 3.0]), [0, 0, 0, 1, 1]
    assert M.reward_variance(r, g) == pytest.approx(11 / 12)
    # global standardization: invariant to a positive affine map of the reward, zero for a constant reward
    assert M.reward_variance(3 * r - 7, g) == pytest.approx(11 / 12)
    assert M.reward_variance([5.0, 5.0, 5.0], [0, 0, 1]) == 0.0


def test_reward_variance_is_not_per_prompt_standardized():
    # each prompt's rewards differ only by a scale: per-prompt standardization would give equal variances
    r = [[0.0, 0.1], [0.0, 10.0]]
    v = M.per_prompt_reward_variance(r)
    assert v[0] < 1e-3 < 1 < v[1]


def test_on_policy_accuracy_hand_computed():
    # prompt 0: r [1,2,3], gold [1,3,2]: pairs (0,1) agree, (0,2) agree, (1,2) disagree
    # prompt 1: r [5,5], gold [0,1]: proxy tie -> wrong. prompt 2: gold tie -> pair excluded
    r = [1, 2, 3, 5, 5, 1, 2]
    gold = [1, 3, 2, 0, 1, 3, 3]
    g = [0, 0, 0, 1, 1, 2, 2]
    assert M.on_policy_accuracy(r, gold, g) == pytest.approx(2 / 4)
    pp = M.on_policy_accuracy(r, gold, g, per_prompt=True)
    assert pp[:2] == pytest.approx([2 / 3, 0.0]) and math.isnan(pp[2])
    # group order does not matter (items interleaved)
    perm = [6, 0, 3, 1, 5, 4, 2]
    assert M.on_policy_accuracy([r[i] for i in perm], [gold[i] for i in perm], [g[i] for i in perm]) == 0.5
    # 2-D layout: perfect proxy = gold
    assert M.on_policy_accuracy([[1, 2, 3]], [[10, 20, 30]]) == 1.0
