"""The ArmoRM model's closed forms: ridge regression with an unpenalized intercept, verbosity decorrelation, and the
gate's distribution and gated score (the trained model end to end: tests/rewards/test_multiobjective.py)."""

import numpy as np
import pytest
import torch

from rewardlab.models.armo import GatingNetwork, armo_score, decorrelate, decorrelation_coefs, ridge_fit


def test_ridge_matches_numpy_lstsq_on_the_augmented_system():
    rng = np.random.default_rng(0)
    X, Y, lam = rng.normal(size=(40, 6)), rng.normal(size=(40, 3)), 2.5
    W, b = ridge_fit(torch.from_numpy(X), torch.from_numpy(Y), lam)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)  # intercept unpenalized: centre, then [Xc; √λ I] w = [Yc; 0]
    w_ref = np.linalg.lstsq(np.vstack([Xc, np.sqrt(lam) * np.eye(6)]), np.vstack([Yc, np.zeros((6, 3))]),
                            rcond=None)[0]
    np.testing.assert_allclose(W.numpy(), w_ref.T, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), Y.mean(0) - X.mean(0) @ w_ref, atol=1e-10)
    W0, b0 = ridge_fit(torch.from_numpy(X), torch.from_numpy(Y), 0.0)  # λ = 0: OLS with an intercept column
    ols = np.linalg.lstsq(np.hstack([X, np.ones((40, 1))]), Y, rcond=None)[0]
    np.testing.assert_allclose(W0.numpy(), ols[:6].T, atol=1e-10)
    np.testing.assert_allclose(b0.numpy(), ols[6], atol=1e-10)


def test_decorrelation_zeroes_the_correlation_with_verbosity():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(500, generator=g)
    scores = torch.stack([2 * v + torch.randn(500, generator=g), v, -v + 0.3 * torch.randn(500, generator=g)], 1)
    lam = decorrelation_coefs(scores, verbosity=1)
    out = decorrelate(scores, lam, 1)
    corr = np.corrcoef(out.T.numpy())[1]
    assert abs(corr[0]) < 1e-6 and abs(corr[2]) < 1e-6 and np.corrcoef(scores.T.numpy())[1, 0] > 0.8
    assert lam[1] == 0 and torch.equal(out[:, 1], scores[:, 1])  # the verbosity column itself is kept


def test_gate_weights_are_a_distribution_and_score_by_hand():
    gate = GatingNetwork(5, 3, hidden=8)
    w = gate(torch.randn(7, 5) * 10)
    assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(7))
    r = torch.tensor([[1.0, 2.0, 3.0]])
    assert armo_score(r, torch.tensor([[0.5, 0.25, 0.25]]), 2.0).item() == pytest.approx(2 * (0.5 + 0.5 + 0.75))
