import itertools
import math

import pytest
import torch

from rewardlab.optimize.best_of_n import bon_curve
from rewardlab.optimize.bon import bon_estimate, bon_kl, bon_weights, duplicate_rate


def brute_force(proxy: list[float], gold: list[float], n: int) -> float:
    """Average over every n-subset of the gold of its proxy-best member (ties: mean over the tied maxima)."""
    total, count = 0.0, 0
    for subset in itertools.combinations(range(len(proxy)), n):
        best = max(proxy[i] for i in subset)
        tied = [gold[i] for i in subset if proxy[i] == best]
        total += sum(tied) / len(tied)
        count += 1
    return total / count


def test_bon_kl_by_hand():
    assert bon_kl(1) == 0.0
    assert bon_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert bon_kl(16) == pytest.approx(2.772588722 - 15 / 16)
    assert torch.allclose(bon_kl(torch.tensor([1, 2, 16])), torch.tensor([0.0, math.log(2) - 0.5, 1.835088722],
                                                                          dtype=torch.float64))


def test_weights_rows_sum_to_one_and_hand_values():
    W = bon_weights(4, [1, 2, 4])
    assert torch.allclose(W.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(W[0], torch.full((4,), 0.25, dtype=torch.float64))
    # n = 2 of N = 4: best at sorted position i (1-based) with prob (i-1)/6
    assert torch.allclose(W[1], torch.tensor([0, 1, 2, 3], dtype=torch.float64) / 6)
    assert torch.allclose(W[2], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64))
    big = bon_weights(3000, [1, 1500, 3000])  # binomials overflow float64 here; log space does not
    assert torch.isfinite(big).all() and torch.allclose(big.sum(1), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimator_matches_enumeration_distinct(seed):
    g = torch.Generator().manual_seed(seed)
    proxy, gold = torch.randn(9, generator=g), torch.randn(9, generator=g)
    est = bon_estimate(proxy, gold)
    for n in range(1, 10):
        assert est[n - 1].item() == pytest.approx(brute_force(proxy.tolist(), gold.tolist(), n), abs=1e-12)


def test_estimator_matches_enumeration_with_ties():
    proxy = [0.0, 1.0, 1.0, 2.0, 1.0, 0.0, 2.0, 3.0]
    gold = [5.0, -1.0, 4.0, 0.5, 2.0, -3.0, 7.0, 1.0]
    est = bon_estimate(torch.tensor(proxy), torch.tensor(gold))
    for n in range(1, len(proxy) + 1):
        assert est[n - 1].item() == pytest.approx(brute_force(proxy, gold, n), abs=1e-12)
    # the answer does not depend on the input order within tie groups
    perm = [7, 6, 5, 4, 3, 2, 1, 0]
    est2 = bon_estimate(torch.tensor([proxy[i] for i in perm]), torch.tensor([gold[i] for i in perm]))
    assert torch.allclose(est, est2)


def test_batched_over_prompts_and_subset_of_n():
    g = torch.Generator().manual_seed(5)
    proxy, gold = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    est = bon_estimate(proxy, gold, ns=[1, 3, 7])
    assert est.shape == (3, 3)
    for p in range(3):
        assert torch.allclose(est[p], bon_estimate(proxy[p], gold[p])[[0, 2, 6]])
    assert torch.allclose(est[:, 0], gold.double().mean(1))  # n = 1: plain mean
    assert torch.allclose(est[:, 2], gold.double().gather(1, proxy.argmax(1, keepdim=True))[:, 0])  # n = N


def test_proxy_curve_is_monotone_at_large_n():
    g = torch.Generator().manual_seed(0)
    proxy = torch.randn(2048, generator=g)
    curve = bon_estimate(proxy, proxy)  # the binomials overflow float64 here; the log-space weights do not
    assert torch.isfinite(curve).all() and (curve.diff() >= -1e-12).all()
    assert curve[0].item() == pytest.approx(proxy.double().mean().item())
    assert curve[-1].item() == pytest.approx(proxy.max().item())


def test_bad_n_rejected():
    with pytest.raises(ValueError):
        bon_estimate(torch.zeros(3), torch.zeros(3), ns=[4])


def brute_duplicates(texts: list[str], n: int) -> float:
    """Average over every n-subset of the fraction of its members whose text another member shares."""
    rates = [sum(sum(texts[j] == texts[i] for j in s) > 1 for i in s) / n
             for s in itertools.combinations(range(len(texts)), n)]
    return sum(rates) / len(rates)


def test_duplicate_rate_by_hand():
    # [a, a, b, c]: among all 4, the two a's repeat each other -> 2/4. Among pairs: 1 of the 6 pairs is {a, a}
    # (rate 1), the other 5 have rate 0 -> 1/6. A single sample never duplicates anything.
    assert duplicate_rate(["a", "a", "b", "c"], [1, 2, 4]) == pytest.approx([0.0, 1 / 6, 0.5])
    assert duplicate_rate(["x", "y", "z"]) == [0.0, 0.0, 0.0]  # all distinct: the KL bound can be tight
    assert duplicate_rate(["x"] * 4, [1, 2, 4]) == pytest.approx([0.0, 1.0, 1.0])  # all the same
    texts = ["u", "v", "u", "w", "v", "u", "t"]
    assert duplicate_rate(texts) == pytest.approx([brute_duplicates(texts, n) for n in range(1, 8)])
    with pytest.raises(ValueError):
        duplicate_rate(["a", "b"], [3])


def test_bon_curve_reports_the_duplicate_rate_per_n():
    proxy, gold = torch.tensor([[1.0, 2, 3, 4], [4.0, 3, 2, 1]]), torch.zeros(2, 4)
    rows = bon_curve(proxy, gold, [1, 2, 4], responses=[["a", "a", "b", "c"], ["p", "q", "r", "s"]])
    assert [r["duplicate_rate"] for r in rows] == pytest.approx([0.0, 1 / 12, 0.25])  # mean of the two prompts
    assert "duplicate_rate" not in bon_curve(proxy, gold, [1, 2])[0]
    with pytest.raises(ValueError):
        bon_curve(proxy, gold, [1], responses=[["a"] * 4])
