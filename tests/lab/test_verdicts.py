"""The evidence rule shared by every claim: synthetic per-seed numbers in, the expected verdict out."""

import math

import numpy as np
import pytest
from scipy import stats

from rewardlab.lab.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    all_of,
    bootstrap_ci,
    caption,
    check_outcomes,
    check_sign,
    fmt,
    peaks_then_falls,
    sign_test_p,
)


@pytest.mark.parametrize("k,n", [(5, 5), (4, 5), (7, 8), (0, 3), (3, 3), (10, 20)])
def test_sign_test_p_matches_scipy(k, n):
    assert sign_test_p(k, n) == pytest.approx(stats.binomtest(k, n, 0.5, alternative="greater").pvalue)


def test_sign_test_by_hand():
    assert sign_test_p(5, 5) == 1 / 32 and sign_test_p(4, 5) == 6 / 32 and sign_test_p(3, 3) == 1 / 8
    assert sign_test_p(0, 0) == 1.0


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_spread():
    v = [0.1, 0.2, 0.3, 0.4, 0.5]
    lo, hi = bootstrap_ci(v)
    assert min(v) <= lo < 0.3 < hi <= max(v)
    lo2, hi2 = bootstrap_ci([0.29, 0.3, 0.3, 0.3, 0.31])
    assert hi2 - lo2 < (hi - lo) / 5
    assert bootstrap_ci([2.0]) == (2.0, 2.0) and all(math.isnan(x) for x in bootstrap_ci([]))


def test_check_sign_three_verdicts():
    assert check_sign([0.2, 0.1, 0.3, 0.25, 0.15]).verdict == REPRODUCED
    assert check_sign([-0.2, -0.1, -0.3, -0.25, -0.15]).verdict == NOT_REPRODUCED
    assert check_sign([-0.2, -0.1, -0.3, -0.25, -0.15], sign=-1).verdict == REPRODUCED
    four = check_sign([0.2, 0.1, 0.3, 0.25, -0.15])              # 4/5: p = 0.19
    assert four.verdict == INCONCLUSIVE and "p = 0.188" in four.reason
    straddle = check_sign([5.0, 0.1, 0.1, 0.1, 0.1, 0.1, -9.0, 0.1, 0.1, 0.1])  # 9/10 agree, mean < 0
    assert straddle.verdict == INCONCLUSIVE and "straddles" in straddle.reason
    assert check_sign([0.1, 0.2, 0.3]).verdict == INCONCLUSIVE  # 3 seeds can never give p < 0.05
    assert check_sign([]).verdict == INCONCLUSIVE
    ok = check_sign([0.1, float("nan"), 0.2, 0.3, 0.4, 0.5, 0.6])  # NaNs are dropped: 6/6
    assert ok.verdict == REPRODUCED and ok.stats["n"] == 6 and ok.reason == ""


def test_check_outcomes_and_all_of():
    assert check_outcomes([True] * 5).verdict == REPRODUCED
    assert check_outcomes([False] * 5).verdict == NOT_REPRODUCED
    assert check_outcomes([True, True, True, False, True]).verdict == INCONCLUSIVE
    yes, maybe, no = check_sign([1.0] * 5, what="a"), check_sign([1.0] * 4 + [-1.0], what="b"), check_sign(
        [-1.0] * 5, what="c")
    assert all_of(yes, yes).verdict == REPRODUCED
    assert all_of(yes, maybe).verdict == INCONCLUSIVE
    combined = all_of(yes, maybe, no)
    assert combined.verdict == NOT_REPRODUCED and combined.reason.startswith("b: 4/5") and "c: 0/5" in combined.reason


def test_claim_reason_and_caption_come_from_the_numbers():
    c = Claim("x", "e", "P", "RMs teach.", "up", "diff > 0", "m", check_sign([0.3, -0.2, 0.1, 0.2, 0.4]),
              diagnosis="RV rankings correlate 0.9")
    d = c.as_dict()
    assert d["verdict"] == INCONCLUSIVE and d["reason"].endswith("RV rankings correlate 0.9")
    assert "4/5 seeds" in d["evidence"] and d["stats"]["agree"] == 4
    assert caption([c]).startswith("Here: RMs teach — INCONCLUSIVE (4/5 seeds")
    good = Claim("y", "e", "P", "s", "up", "r", "m", check_sign(np.linspace(0.1, 1, 6)), diagnosis="unused")
    assert good.reproduced and good.reason == ""


def test_other_rules():
    assert peaks_then_falls([0, 1, 2, 1.5])
    assert not peaks_then_falls([0, 1, 2, 3])                   # still rising
    assert not peaks_then_falls([0, 1, 2, 1.95])                # drop 0.05 < 10% of the 2.0 gain
    assert not peaks_then_falls([0, -1, -2])                    # never gains
    assert fmt([1.0, 2.0, 3.0]) == "2.00 ± 1.00 (n=3)" and fmt([]) == "n/a" and fmt([0.5]) == "0.50"
