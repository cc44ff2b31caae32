"""Best-of-n: analytic KL and the unbiased estimator of the gold reward of proxy-best-of-n (DESIGN §6).

Gao, Schulman & Hilton (2022), "Scaling Laws for Reward Model Overoptimization", Appendix: with N ≥ n samples of
one prompt sorted by proxy ascending, the probability that a uniformly random n-subset has its proxy-best at
sorted position i (1-based) is ``C(i−1, n−1) / C(N, n)``, so

    E[gold of proxy-best-of-n] = Σ_{i=n}^{N} C(i−1, n−1) / C(N, n) · gold_(i)

is unbiased, and one set of N samples gives the whole curve n = 1..N. Weights are computed in log space with
``lgamma`` (the binomials overflow float64 beyond N ≈ 1000).

Ties in the proxy: best-of-n then picks uniformly among the tied maxima. Replacing the gold of every member of a
tie group by the group mean makes the estimator exact for that rule (by symmetry, each tied member is equally
likely to be the one picked), so ties never depend on the sort order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def bon_kl(n: int | torch.Tensor) -> torch.Tensor | float:
    """Analytic ``KL(π_BoN ‖ π₀) = log n − (n − 1)/n`` (an upper bound; exact for continuous rewards)."""
    if isinstance(n, torch.Tensor):
        n = n.double()
        return n.log() - (n - 1) / n
    return math.log(n) - (n - 1) / n


def bon_weights(N: int, ns: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Weights ``W[j, i] = C(i, n_j − 1) / C(N, n_j)`` for sorted position ``i`` (0-based) and ``n_j`` in ``ns``.

    Shape ``[len(ns), N]``; each row sums to 1 and is zero for ``i < n_j − 1``.
    """
    ns = torch.as_tensor(ns, dtype=torch.float64)
    if ns.numel() and (ns.min() < 1 or ns.max() > N):
        raise ValueError(f"every n must be in 1..{N}, got {ns.tolist()}")
    i = torch.arange(N, dtype=torch.float64)  # 0-based position; C(i, n-1) counts subsets below it
    n = ns[:, None]
    valid = i[None, :] >= n - 1
    log_c_i = torch.lgamma(i + 1) - torch.lgamma(n) - torch.lgamma((i - n + 2).clamp_min(1))
    log_c_N = math.lgamma(N + 1) - torch.lgamma(n + 1) - torch.lgamma(N - n + 1)
    return torch.where(valid, (log_c_i - log_c_N).exp(), torch.zeros(()))


def _tie_mean(sorted_proxy: torch.Tensor, sorted_gold: torch.Tensor) -> torch.Tensor:
    """Replace each gold value by the mean gold of its proxy tie group (rows are sorted by proxy). Shape kept."""
    out = sorted_gold.clone()
    for r in range(sorted_proxy.shape[0]):
        vals, inverse, counts = torch.unique_consecutive(sorted_proxy[r], return_inverse=True, return_counts=True)
        if len(vals) == sorted_proxy.shape[1]:
            continue
        sums = torch.zeros(len(vals), dtype=out.dtype).index_add_(0, inverse, sorted_gold[r])
        out[r] = (sums / counts)[inverse]
    return out


def bon_estimate(proxy: torch.Tensor, gold: torch.Tensor, ns: Sequence[int] | None = None) -> torch.Tensor:
    """Unbiased E[gold of the proxy-best of n samples] for each n in ``ns`` (default: every n in 1..N).

    ``proxy``, ``gold``: ``[N]`` (one prompt) or ``[P, N]`` (N samples for each of P prompts).
    Returns ``[len(ns)]`` or ``[P, len(ns)]`` (float64). Cost: sort O(N log N) plus O(N) per n, so every
    n ≤ N is O(N²) (N = 4096 in well under a second), a log-spaced grid of n is O(N log N).
    Passing ``gold = proxy`` gives the proxy curve.
    """
    single = proxy.dim() == 1
    proxy, gold = torch.atleast_2d(proxy).double(), torch.atleast_2d(gold).double()
    if proxy.shape != gold.shape:
        raise ValueError(f"proxy {tuple(proxy.shape)} and gold {tuple(gold.shape)} differ")
    N = proxy.shape[1]
    ns = list(range(1, N + 1)) if ns is None else list(ns)
    sorted_proxy, order = proxy.sort(dim=1, stable=True)
    sorted_gold = _tie_mean(sorted_proxy, gold.gather(1, order))
    est = sorted_gold @ bon_weights(N, ns).T  # [P, N] @ [N, len(ns)]
    return est[0] if single else est
