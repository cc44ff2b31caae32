import numpy as np
import pytest

from rewardlab.optimize.fits import fit_bon, fit_gao, fit_rl


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
    fit = fit_bon([1.0, 2.0], [1.0, 0.0])
    assert (fit.alpha, fit.beta, fit.r2) == pytest.approx((2.0, 1.0, 1.0))
    # gold still rising faster than d (beta < 0): no overoptimization peak
    d = np.array([1.0, 2.0, 3.0])
    fit = fit_rl(d, d * (1.0 + 0.2 * np.log(d)))
    assert fit.beta == pytest.approx(-0.2) and fit.peak() is None
    with pytest.raises(ValueError):
        fit_gao([1.0], [1.0], "bon")
    with pytest.raises(ValueError):
        fit_gao([1.0, 2.0], [1.0, 2.0], "cubic")
