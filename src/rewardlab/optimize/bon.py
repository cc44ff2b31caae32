"""Best-of-n: the KL bound, the duplicate rate and the unbiased estimator of the gold of proxy-best-of-n.

KL: ``KL(π_BoN ‖ π₀) ≤ log n − (n − 1)/n`` (Beirami et al. 2024, "Theoretical guarantees on the best-of-n alignment
policy"). It is an upper bound, exact only when the n samples are all distinct with continuous (tie-free) rewards;
with repeated responses (a peaked policy, short answers) the true KL is smaller, so report the duplicate rate
(:func:`duplicate_rate`) next to it.

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
from collections.abc import Hashable, Sequence

import torch


def bon_kl(n: int | torch.Tensor) -> torch.Tensor | float:
    """The bound ``KL(π_BoN ‖ π₀) ≤ log n − (n − 1)/n`` (Beirami et al. 2024); exact only for n distinct samples
    with continuous rewards."""
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


def duplicate_rate(texts: Sequence[Hashable], ns: Sequence[int] | None = None) -> list[float]:
    """Expected fraction of samples that duplicate another sample's response, among a uniformly random n-subset of
    one prompt's N samples ``texts``, for each n in ``ns`` (default: every n in 1..N).

    A sample i with c_i copies among the N (itself included) has no copy among the n − 1 others of its subset with
    probability ``C(N − c_i, n − 1) / C(N − 1, n − 1)``, so by symmetry the expected rate is
    ``(1/N) Σ_i [1 − C(N − c_i, n − 1) / C(N − 1, n − 1)]`` (at n = N: the fraction of samples with a copy).
    """
    N = len(texts)
    ns = list(range(1, N + 1)) if ns is None else list(ns)
    if any(n < 1 or n > N for n in ns):
        raise ValueError(f"every n must be in 1..{N}, got {ns}")
    copies: dict[Hashable, int] = {}
    for t in texts:
        copies[t] = copies.get(t, 0) + 1
    samples_with: dict[int, int] = {}  # c -> number of samples that have c copies (all samples share the formula)
    for c in copies.values():
        samples_with[c] = samples_with.get(c, 0) + c

    def log_binom(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    out = []
    for n in ns:
        dup = 0.0
        for c, m in samples_with.items():
            alone = math.exp(log_binom(N - c, n - 1) - log_binom(N - 1, n - 1)) if N - c >= n - 1 else 0.0
            dup += m * (1.0 - alone)
        out.append(dup / N)
    return out


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
