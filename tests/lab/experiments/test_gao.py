"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import gao
from rewardlab.lab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05
D = np.linspace(0, 2, 15)


def _bon(d, a, b):
    return d * (a - b * d)


def _rl(d, a, b):
    return d * (a - b * np.log(np.where(d > 0, d, 1.0)))


def _seed(gold: dict[str, np.ndarray], d: np.ndarray = D) -> dict:
    """A per-seed record from gold curves [amounts, T] per kind (proxy rising, d shared, fits as run_seed does)."""
    out = {"bon_d_limit": np.full(len(gold["bon"]), float(d.max()))}
    for kind, g in gold.items():
        n = len(g)
        out[kind] = {"d": np.stack([d] * n), "gold": g, "proxy": np.stack([d * (1.2 + 0.1 * j) for j in range(n)])}
        fit = gao.fit_bon if kind == "bon" else gao.fit_rl
        out[f"{kind}_fits"] = [fit(d, g[j]).as_dict() for j in range(n)]
    return out


def _form_seed(n_amounts: int, overopt: bool) -> dict:
    """Curves that ARE Gao's forms: α grows with data, β shrinks (BoN peaks at d = 0.83, RL at 0.72 for the
    least data; the others still rise at d = 2 or peak later), or β = 0 (no over-optimization)."""
    gold = {}
    for kind, form in (("bon", _bon), ("rl", _rl)):
        beta = (0.6 if kind == "bon" else 1.5) if overopt else 0.0
        gold[kind] = np.stack([form(D, 1.0 + 0.2 * j, beta / (1 + j)) for j in range(n_amounts)])
    return _seed(gold)


def _claims(per_seed, cfg=None) -> dict:
    return {c.id: c for c in gao.summarize(cfg or gao.GaoConfig(), per_seed).claims}


@pytest.mark.parametrize("overopt", [True, False])
def test_gao_rules(overopt):
    cfg = gao.GaoConfig()
    claims = _claims([_form_seed(len(cfg.n_pairs), overopt) for _ in range(SEEDS)], cfg)
    assert claims["gao-overopt-bon"].reproduced is overopt
    assert claims["gao-overopt-rl"].reproduced is overopt
    assert claims["gao-data-bon"].reproduced  # peak grows with the amount index in both cases
    # The exact forms with β > 0 fit; with β = 0 (straight lines) "β > 0" fails in every seed.
    assert claims["gao-forms"].verdict == (REPRODUCED if overopt else NOT_REPRODUCED)
    if not overopt:
        assert "β ≤ 0 in 20/20" in claims["gao-forms"].reason
        assert claims["gao-later-peak"].verdict == INCONCLUSIVE  # no curve turns: no order is known


def test_gao_data_rule_fails_when_more_data_is_worse():
    cfg = gao.GaoConfig()
    per_seed = [_form_seed(len(cfg.n_pairs), True) for _ in range(SEEDS)]
    for o in per_seed:
        o["bon"]["gold"] = o["bon"]["gold"][::-1].copy()
    claims = _claims(per_seed, cfg)
    assert not claims["gao-data-bon"].reproduced
    assert "ρ ≤ 0 in 5/5 seeds" in claims["gao-data-bon"].diagnosis


# ----------------------------------------------------------------------------------------- one curve's fit
def test_check_fit_passes_the_form_itself_and_a_rising_curve():
    for g, peaked in ((_bon(D, 1.0, 0.6), True), (_bon(D, 1.0, 0.1), False)):  # peak 0.83 / 5 (beyond d = 2)
        c = gao.check_fit(gao.fit_bon(D, g).as_dict(), D, g, 0.1)
        assert c["fails"] == [] and c["peaked"] is peaked


def test_check_fit_names_each_failure():
    d = np.linspace(0, 2, 21)
    convex = d * (0.5 + 0.5 * d)                                        # β = −0.5
    falling = -d * (0.5 + 0.1 * d)                                      # α = −0.5
    late_turn = d * (1 - 0.05 * d)                                      # rises to 1.8, then drops 20%: the
    late_turn[-2:] = late_turn[-3] * np.array([0.9, 0.8])               # fit puts the peak at d ≈ 3 (R² 0.97)
    noisy = _bon(d, 1.0, 0.4) + np.random.default_rng(0).normal(0, 0.3, d.size)
    cases = {"beta": convex, "alpha": falling, "peak": late_turn, "r2": noisy}
    for key, g in cases.items():
        fails = gao.check_fit(gao.fit_bon(d, g).as_dict(), d, g, 0.1)["fails"]
        assert key in fails, (key, fails)
    assert gao.check_fit(gao.fit_bon(d, late_turn).as_dict(), d, late_turn, 0.1)["fails"] == ["peak"]
    short = np.linspace(0, 2, gao.MIN_POINTS - 1)
    g = _bon(short, 1.0, 0.6)
    assert gao.check_fit(gao.fit_bon(short, g).as_dict(), short, g, 0.1)["fails"] == ["points"]


def test_gao_forms_rule_fails_on_late_turning_curves():
    cfg = gao.GaoConfig()
    d = np.linspace(0, 2, 21)
    late = d * (1 - 0.05 * d)
    late[-2:] = late[-3] * np.array([0.9, 0.8])
    gold = {"bon": np.stack([late] * len(cfg.n_pairs)), "rl": np.stack([_rl(d, 1.0, 1.5)] * len(cfg.n_pairs))}
    claims = _claims([_seed(gold, d) for _ in range(SEEDS)], cfg)
    assert claims["gao-forms"].verdict == NOT_REPRODUCED
    assert "BoN fits: fitted peak off in 20/20" in claims["gao-forms"].diagnosis


# -------------------------------------------------------------------------------------------- later peak
def test_later_peak_score_by_hand():
    # j=0 peaks at 0.5, j=1 at 1.0, j=2 never turns (ends at 2.0), j=3 peaks at 0.8.
    curves = [(True, 0.5, 1.0), (True, 1.0, 2.0), (False, 2.0, 2.0), (True, 0.8, 2.0)]
    # pairs: (0,1) +1, (0,2) +1, (0,3) +1, (1,2) +1, (1,3) −1, (2,3) −1 (2 is beyond 2.0 > 0.8) -> 2/6
    assert gao.later_peak_score(curves) == pytest.approx(2 / 6)
    # a censored curve that ends before the other's peak gives no order
    assert gao.later_peak_score([(True, 1.5, 2.0), (False, 1.0, 1.0)]) == 0.0


@pytest.mark.parametrize("peaks,verdict", [((0.6, 0.9, 1.2, 1.5), REPRODUCED), ((1.5, 1.2, 0.9, 0.6), NOT_REPRODUCED)])
def test_later_peak_rule(peaks, verdict):
    d = np.linspace(0, 3, 25)
    gold = {kind: np.stack([_bon(d, 2 * 0.5 * p, 0.5) for p in peaks]) for kind in ("bon", "rl")}  # d* = α/2β = p
    claims = _claims([_seed(gold, d) for _ in range(SEEDS)])
    assert claims["gao-later-peak"].verdict == verdict
    if verdict != REPRODUCED:
        assert "observed peak d 100: 1.50" in claims["gao-later-peak"].diagnosis
