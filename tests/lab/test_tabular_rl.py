"""Tabular optimization: the exact gradient, RLOO's estimate of it, exact best-of-n."""

import itertools
import math

import pytest
import torch

from rewardlab.lab.tabular_rl import bon_curve, bon_distribution, exact_gradient, optimize, rloo_gradient
from rewardlab.lab.world import expectation, kl
from rewardlab.optimize.bon import bon_estimate, bon_kl


def _objective(logits, ref, reward, beta):
    return (expectation(logits, reward) - beta * kl(logits, ref)).sum()


def _problem(P=3, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(P, C, generator=g, dtype=torch.float64)
    logits = ref + 0.5 * torch.randn(P, C, generator=g, dtype=torch.float64)
    reward = torch.randn(P, C, generator=g, dtype=torch.float64)
    return logits, ref, reward


@pytest.mark.parametrize("beta", [0.0, 0.05, 0.7])
def test_exact_gradient_matches_finite_differences(beta):
    logits, ref, reward = _problem()
    grad = exact_gradient(logits, ref, reward, beta)
    h = 1e-6
    fd = torch.zeros_like(logits)
    for i, j in itertools.product(range(logits.shape[0]), range(logits.shape[1])):
        e = torch.zeros_like(logits)
        e[i, j] = h
        fd[i, j] = (_objective(logits + e, ref, reward, beta) - _objective(logits - e, ref, reward, beta)) / (2 * h)
    assert torch.allclose(grad, fd, atol=1e-8)


def test_rloo_gradient_is_an_unbiased_estimate_of_the_exact_gradient():
    logits, ref, reward = _problem(P=2, C=4, seed=1)
    R = 20000  # independent RLOO estimates, vectorized along the leading axis
    est = rloo_gradient(logits.expand(R, -1, -1).clone(), ref, reward.expand(R, -1, -1), beta=0.3, k=2,
                        generator=torch.Generator().manual_seed(0))
    exact = exact_gradient(logits, ref, reward, 0.3)
    se = est.std(0) / math.sqrt(R)
    assert ((est.mean(0) - exact).abs() <= 5 * se + 1e-4).all()


def test_exact_ascent_increases_the_objective_and_records_gold():
    logits, ref, reward = _problem()
    traj = optimize(ref, reward[None], reward, beta=0.1, lr=0.5, steps=50, record=[0, 10, 50])
    assert traj.steps == [0, 10, 50]
    obj = [float((traj.proxy[t] - 0.1 * traj.kl[t]).mean()) for t in range(3)]
    assert obj[0] < obj[1] < obj[2]
    assert float(traj.kl[0].abs().max()) == 0.0


def test_shared_features_move_every_prompt():
    # with shared weights, a reward that only exists on prompt 0 also moves prompt 1 (generalization)
    P, C = 2, 3
    ref = torch.zeros(P, C, dtype=torch.float64)
    feats = torch.tensor([[[0.0], [1.0], [2.0]], [[0.0], [1.0], [2.0]]], dtype=torch.float64)
    reward = torch.zeros(1, P, C, dtype=torch.float64)
    reward[0, 0] = torch.tensor([0.0, 1.0, 2.0])
    plain = optimize(ref, reward, reward[0], beta=0.0, lr=1.0, steps=5, record=[5])
    shared = optimize(ref, reward, reward[0], beta=0.0, lr=1.0, steps=5, record=[5], features=feats)
    assert float(plain.kl[0][0, 1]) == 0.0 and float(shared.kl[0][0, 1]) > 0.0


def test_bon_distribution_matches_enumeration():
    g = torch.Generator().manual_seed(3)
    C = 4
    ref = torch.randn(1, C, generator=g, dtype=torch.float64)
    proxy = torch.randn(1, 1, C, generator=g, dtype=torch.float64)
    p0 = torch.softmax(ref[0], -1)
    for n in (1, 2, 3):
        brute = torch.zeros(C, dtype=torch.float64)
        for draw in itertools.product(range(C), repeat=n):
            prob = math.prod(float(p0[i]) for i in draw)
            brute[max(draw, key=lambda i: float(proxy[0, 0, i]))] += prob
        assert torch.allclose(bon_distribution(ref, proxy, n)[0, 0], brute, atol=1e-12)


def test_exact_bon_agrees_with_the_optimize_stage_estimator_and_kl_bound():
    g = torch.Generator().manual_seed(0)
    P, C, N = 4, 10, 4000
    ref = torch.randn(P, C, generator=g, dtype=torch.float64)
    proxy = torch.randn(1, P, C, generator=g, dtype=torch.float64)
    gold = proxy[0] + torch.randn(P, C, generator=g, dtype=torch.float64)
    ns = [1, 2, 8, 32]
    exact = bon_curve(ref, proxy, gold, ns)
    ys = torch.multinomial(torch.softmax(ref, -1), N, replacement=True, generator=g)
    jitter = 1e-9 * torch.rand(P, N, generator=g, dtype=torch.float64)  # break ties between equal candidates
    est = bon_estimate(proxy[0].gather(1, ys) + jitter, gold.gather(1, ys), ns)  # [P, len(ns)]
    assert torch.allclose(est.T, exact["gold"][:, 0], atol=0.05)
    for j, n in enumerate(ns):
        assert float(exact["kl"][j].max()) <= bon_kl(n) + 1e-9
