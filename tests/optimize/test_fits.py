import numpy as np
import pytest

from rewardlab.optimize.fits import MIN_POINTS, describe, fit_bon, fit_gao, fit_rl, from_dict


def test_bon_fit_recovers_known_parameters():
    d = np.linspace(0.1, 4.0, 30)
    fit = fit_bon(d, d * (1.5 - 0.3 * d))
    assert (fit.alpha, fit.beta, fit.r2) == pytest.approx((1.5, 0.3, 1.0), abs=1e-9)
    assert fit.peak() == pytest.approx(2.5)
    assert fit.predict([2.0]) == pytest.approx([2.0 * (1.5 - 0.6)])


def test_rl_fit_recovers_known_parameters_with_noise():
    rng = np.random.default_rng(0)
    d = np.linspace(0.2, 6.0, 200)
    clean = d * (1.0 - 0.4 * np.log(d))
    fit = fit_rl(d, clean + rng.normal(0, 0.05, d.shape))
    assert fit.alpha == pytest.approx(1.0, abs=0.03) and fit.beta == pytest.approx(0.4, abs=0.03)
    assert 0.9 < fit.r2 < 1.0
    assert fit.peak() == pytest.approx(np.exp(1.0 / 0.4 - 1), rel=0.1)


def test_r2_by_hand_and_errors():
    # gold = [1, 0] at d = [1, 2]: bon design [[1,-1],[2,-4]] is square and invertible -> exact, R^2 = 1
    fit = fit_bon([1.0, 2.0], [1.0, 0.0], min_points=2)
    assert (fit.alpha, fit.beta, fit.r2) == pytest.approx((2.0, 1.0, 1.0))
    # gold still rising faster than d (beta < 0): no overoptimization peak
    d = np.array([1.0, 2.0, 3.0])
    fit = fit_rl(d, d * (1.0 + 0.2 * np.log(d)), min_points=3)
    assert fit.beta == pytest.approx(-0.2) and fit.peak() is None
    with pytest.raises(ValueError):
        fit_gao([1.0, 2.0], [1.0, 2.0], "cubic")
    with pytest.raises(ValueError):
        fit_gao([1.0, 2.0], [1.0], "bon")


def test_three_points_are_insufficient_not_a_perfect_fit():
    # three points of any rise-and-fall: least squares gives R^2 ~ 1, which says nothing; the fit refuses instead
    d, gold = [0.0, 0.5, 1.0, 1.5], [0.0, 0.4, 0.5, 0.3]  # d = 0 does not count: both forms pass through 0
    assert fit_bon(d, gold, min_points=3).r2 > 0.99  # what used to be printed as "R² 1.000"
    fit = fit_bon(d, gold)
    assert not fit.sufficient and fit.n_distinct == 3 and fit.n_points == 4
    assert np.isnan([fit.alpha, fit.beta, fit.r2]).all() and fit.peak() is None
    out = fit.as_dict()
    assert out["alpha"] is None and out["r2"] is None and out["sufficient"] is False and "≥ 5" in out["reason"]
    assert "n/a (3 points" in describe(out) and "n/a (3 points" in describe(fit)
    # repeated d values are one point: 6 points at 4 distinct d are still insufficient, 5 distinct are enough
    assert not fit_rl([1, 1, 2, 2, 3, 4], [1, 1, 2, 2, 3, 4]).sufficient
    assert fit_rl([1, 2, 3, 4, 5], [1, 2, 3, 3, 2]).sufficient and MIN_POINTS == 5


def test_bon_fit_recovers_parameters_from_a_noisy_curve_with_few_points():
    rng = np.random.default_rng(3)
    d = np.sqrt(np.log(2.0 ** np.arange(1, 11)) - (2.0 ** np.arange(1, 11) - 1) / 2.0 ** np.arange(1, 11))
    fit = fit_bon(d, d * (0.8 - 0.25 * d) + rng.normal(0, 0.01, d.shape))  # 10 points, n = 2 .. 1024
    assert fit.sufficient and fit.n_distinct == 10
    assert fit.alpha == pytest.approx(0.8, abs=0.05) and fit.beta == pytest.approx(0.25, abs=0.03)
    assert fit.peak() == pytest.approx(0.8 / 0.5, rel=0.15) and f"α={fit.alpha:.4g}" in describe(fit)
    # round trip through the JSON dict the summaries store
    back = from_dict(fit.as_dict())
    assert (back.alpha, back.beta, back.r2) == (fit.alpha, fit.beta, fit.r2)


def test_a_fit_with_alpha_below_zero_is_outside_gaos_form_not_a_peak():
    d = np.linspace(0.2, 3.0, 12)
    fit = fit_rl(d, d * (-0.5 - 0.3 * np.log(d)))  # gold falls from the start: α = −0.5 < 0, β = 0.3 > 0
    assert fit.alpha == pytest.approx(-0.5) and fit.beta == pytest.approx(0.3)
    assert not fit.in_form and fit.peak() is None and fit.as_dict()["in_form"] is False
    assert "outside Gao's form (α ≤ 0: gold never rose; no peak)" in describe(fit)
