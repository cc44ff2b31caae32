"""Reward-model metrics: pure functions on score arrays (numpy arrays, torch tensors or lists).

Conventions: ``chosen``/``rejected`` are 1-D score arrays of shape ``[n_pairs]``; ``Δ = chosen - rejected``.
A tie (Δ == 0) always counts as an error (RewardBench convention). Rewards of sampled responses are flat arrays
``[n_items]`` with ``group[i]`` = index of the prompt of item ``i`` (the layout of ``Rollout.group``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ArrayLike = Any  # np.ndarray | torch.Tensor | Sequence[float]

# RewardBench 1 (allenai/reward-bench, rewardbench/constants.py @ 05a9005: SUBSET_MAPPING, EXAMPLE_COUNTS).
RB1_SECTIONS: dict[str, list[str]] = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}
RB1_EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28,
    "mt-bench-med": 40, "mt-bench-hard": 37,
    "math-prm": 984,  # real count 447; up-weighted so math weighs as much as the 6 code subsets (6 x 164)
    "refusals-dangerous": 100, "refusals-offensive": 100, "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136,
    "hep-cpp": 164, "hep-go": 164, "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}


def as_numpy(x: ArrayLike) -> np.ndarray:
    """float64 numpy copy of an array, tensor or list (torch tensors are detached and moved to CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(chosen: ArrayLike, rejected: ArrayLike) -> np.ndarray:
    c, r = as_numpy(chosen), as_numpy(rejected)
    if c.shape != r.shape or c.ndim != 1:
        raise ValueError(f"chosen {c.shape} and rejected {r.shape} must be equal 1-D shapes")
    return c - r


# ----------------------------------------------------------------------------------------------- accuracy
def pairwise_accuracy(chosen: ArrayLike, rejected: ArrayLike) -> float:
    """mean[r(chosen) > r(rejected)] over pairs; ties count as wrong. Shapes ``[n]``. NaN when n == 0."""
    d = _pair(chosen, rejected)
    return float(np.mean(d > 0)) if d.size else math.nan


def tie_rate(chosen: ArrayLike, rejected: ArrayLike) -> float:
    """Fraction of pairs with r(chosen) == r(rejected) exactly."""
    d = _pair(chosen, rejected)
    return float(np.mean(d == 0)) if d.size else math.nan


def subset_accuracy(
    chosen: ArrayLike, rejected: ArrayLike, subsets: Sequence[str | None]
) -> dict[str, dict]:
    """Pairwise accuracy per subset: ``{subset: {"accuracy", "tie_rate", "n"}}`` (``None`` -> "all")."""
    d = _pair(chosen, rejected)
    names = np.array([s if s is not None else "all" for s in subsets], dtype=object)
    if len(names) != d.size:
        raise ValueError(f"{len(names)} subset labels for {d.size} pairs")
    out: dict[str, dict] = {}
    for name in sorted(set(names.tolist())):
        m = names == name
        out[name] = {"accuracy": float(np.mean(d[m] > 0)), "tie_rate": float(np.mean(d[m] == 0)),
                     "n": int(m.sum())}
    return out


def section_scores(
    subset_scores: Mapping[str, float],
    sections: Mapping[str, Sequence[str]] | None = None,
    weights: Mapping[str, float] | None = None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """RewardBench-1-style section-weighted scores.

    ``section = Σ_s acc_s · w_s / Σ_s w_s`` over the subsets ``s`` of the section that are present in
    ``subset_scores``; ``w_s = weights[s]`` if given there (default: RB1's EXAMPLE_COUNTS, where math-prm = 984),
    else ``counts[s]`` (the observed number of pairs), else 1. ``overall`` = unweighted mean of the sections that
    have at least one subset present (reward-bench reports an absent section as 0; we leave it out instead).
    Returns ``{"sections": {name: score}, "overall": float, "unsectioned": [subsets in no section]}``.
    """
    sections = RB1_SECTIONS if sections is None else sections
    weights = RB1_EXAMPLE_COUNTS if weights is None else weights
    counts = counts or {}
    out: dict[str, float] = {}
    for section, members in sections.items():
        present = [s for s in members if s in subset_scores]
        if not present:
            continue
        w = np.array([float(weights.get(s, counts.get(s, 1))) for s in present])
        acc = np.array([float(subset_scores[s]) for s in present])
        out[section] = float(np.sum(acc * w) / np.sum(w))
    in_any = {s for members in sections.values() for s in members}
    return {
        "sections": out,
        "overall": float(np.mean(list(out.values()))) if out else math.nan,
        "unsectioned": sorted(s for s in subset_scores if s not in in_any),
    }


# -------------------------------------------------------------------------------------------- calibration
def rankdata(x: ArrayLike) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (``scipy.stats.rankdata(method="average")``)."""
    x = as_numpy(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], xs.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty_like(xs)
    ranks[order] = avg[grp]
    return ranks


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; NaN if either input is constant."""
    x, y = as_numpy(x), as_numpy(y)
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.sum(xc * xc) * np.sum(yc * yc)))
    return float(np.sum(xc * yc) / den) if den > 0 else math.nan


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation = Pearson correlation of average ranks."""
    return pearson(rankdata(x), rankdata(y))


def length_bias(chosen: ArrayLike, rejected: ArrayLike, chosen_len: ArrayLike, rejected_len: ArrayLike
                ) -> dict[str, float]:
    """Length bias of a reward on pairs.

    ``spearman``: rank correlation of reward with response length over all 2n responses.
    ``acc_chosen_shorter`` / ``acc_chosen_longer``: pairwise accuracy on the pairs where the chosen response is
    strictly shorter / longer than the rejected one (equal lengths excluded), with their counts. A length-biased RM
    scores high when chosen is longer and low when it is shorter.
    """
    c, r = as_numpy(chosen), as_numpy(rejected)
    lc, lr = as_numpy(chosen_len), as_numpy(rejected_len)
    d = _pair(c, r)
    shorter, longer = lc < lr, lc > lr
    return {
        "spearman": spearman(np.r_[c, r], np.r_[lc, lr]),
        "acc_chosen_shorter": float(np.mean(d[shorter] > 0)) if shorter.any() else math.nan,
        "acc_chosen_longer": float(np.mean(d[longer] > 0)) if longer.any() else math.nan,
        "n_chosen_shorter": int(shorter.sum()),
        "n_chosen_longer": int(longer.sum()),
    }


# ------------------------------------------------------------------------------------------------ ensembles
def ensemble_disagreement(member_scores: ArrayLike, ddof: int = 0) -> np.ndarray:
    """Per-item std across ensemble members. ``member_scores``: ``[n, K]`` (K members) -> ``[n]``."""
    s = as_numpy(member_scores)
    if s.ndim != 2:
        raise ValueError(f"member scores must be [n, K], got {s.shape}")
    return s.std(axis=1, ddof=ddof)


def ensemble_pair_disagreement(chosen: ArrayLike, rejected: ArrayLike, ddof: int = 0,
                                ensemble_delta: ArrayLike | None = None) -> dict[str, Any]:
    """Disagreement of an ensemble on pairs and how well it flags errors.

    ``chosen``/``rejected``: member scores ``[n, K]``. Per pair, ``std`` = std over members of
    Δ_k = chosen_k − rejected_k; ``error`` = 1 if the ensemble's Δ ≤ 0, where the ensemble's Δ is
    ``ensemble_delta`` ``[n]`` (e.g. of a WCO/UWO aggregate) or by default the mean over members. Returns the
    per-pair std, the mean std, and the Pearson (point-biserial) and Spearman correlations of std with error
    (high = disagreement predicts mistakes).
    """
    delta = as_numpy(chosen) - as_numpy(rejected)
    std = ensemble_disagreement(delta, ddof)
    ens = delta.mean(axis=1) if ensemble_delta is None else as_numpy(ensemble_delta)
    err = (ens <= 0).astype(np.float64)
    return {"std": std, "mean_std": float(std.mean()), "corr_with_error": pearson(std, err),
            "spearman_with_error": spearman(std, err), "error_rate": float(err.mean())}


# ------------------------------------------------------------------------- teacher metrics (Razin et
# al. 2025)
def _groups(rewards: ArrayLike, group: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    r = as_numpy(rewards)
    if group is None:
        if r.ndim != 2:
            raise ValueError("pass group indices, or rewards shaped [n_prompts, m]")
        return r.reshape(-1), np.repeat(np.arange(r.shape[0]), r.shape[1])
    g = np.asarray(group.cpu() if hasattr(group, "cpu") else group, dtype=np.int64)
    if r.ndim != 1 or g.shape != r.shape:
        raise ValueError(f"rewards {r.shape} and group {g.shape} must be equal 1-D shapes")
    return r, g


def standardize_global(rewards: ArrayLike) -> np.ndarray:
    """(r − mean) / std with mean and population std over every (prompt, response); all-zero if std == 0."""
    r = as_numpy(rewards)
    sd = r.std()
    return (r - r.mean()) / sd if sd > 0 else np.zeros_like(r)


def per_prompt_reward_variance(rewards: ArrayLike, group: ArrayLike | None = None) -> np.ndarray:
    """Var_{y~π(x)} r̃(x, y) for each prompt: population variance of the GLOBALLY standardized rewards r̃.

    ``rewards``: ``[n_items]`` with ``group`` ``[n_items]`` (prompt index 0..P−1), or ``[P, m]`` with group None.
    Returns ``[P]`` (prompts with no item get NaN).
    """
    r, g = _groups(rewards, group)
    z = standardize_global(r)
    n_prompts = int(g.max()) + 1 if g.size else 0
    cnt = np.bincount(g, minlength=n_prompts).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, weights=z, minlength=n_prompts) / cnt
        return np.bincount(g, weights=(z - mean[g]) ** 2, minlength=n_prompts) / cnt


def reward_variance(rewards: ArrayLike, group: ArrayLike | None = None) -> float:
    """Reward variance RV = mean_x Var_{y~π(x)} r̃(x, y) (Razin et al. 2025, "What Makes a Reward Model a Good
    Teacher?"). r̃ is the reward standardized with the global mean/std over all (prompt, response); the
    within-prompt variance is the population variance over the m sampled responses, averaged over prompts.
    Low RV ⇒ flat RLHF objective ⇒ slow optimization, however accurate the RM is.
    """
    v = per_prompt_reward_variance(rewards, group)
    return float(np.nanmean(v)) if v.size else math.nan


def _within_prompt_pairs(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(g, kind="stable")
    gs = g[order]
    i_list, j_list = [], []
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]]) if gs.size else np.array([], dtype=np.int64)
    ends = np.r_[starts[1:], gs.size]
    for s, e in zip(starts, ends, strict=True):
        a, b = np.triu_indices(e - s, k=1)
        i_list.append(order[s + a])
        j_list.append(order[s + b])
    if not i_list:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    return np.concatenate(i_list), np.concatenate(j_list)


def on_policy_accuracy(rewards: ArrayLike, gold: ArrayLike, group: ArrayLike | None = None,
                       per_prompt: bool = False) -> float | np.ndarray:
    """On-policy accuracy (Razin et al. 2025): over all pairs (y, y') of responses to the same prompt whose gold
    rewards differ, the fraction with sign(r(y) − r(y')) == sign(r*(y) − r*(y')); a proxy tie counts as wrong.

    ``rewards``/``gold``: ``[n_items]`` with ``group``, or ``[P, m]``. Returns the fraction pooled over all pairs
    (NaN if no pair qualifies), or with ``per_prompt=True`` a ``[P]`` array of per-prompt fractions.
    """
    r, g = _groups(rewards, group)
    gold_flat, _ = _groups(gold, g if group is not None else None)
    i, j = _within_prompt_pairs(g)
    dg = gold_flat[i] - gold_flat[j]
    keep = dg != 0
    agree = (np.sign(r[i] - r[j]) == np.sign(dg))[keep].astype(np.float64)
    if not per_prompt:
        return float(agree.mean()) if agree.size else math.nan
    n_prompts = int(g.max()) + 1 if g.size else 0
    gp = g[i][keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(gp, weights=agree, minlength=n_prompts) / np.bincount(gp, minlength=n_prompts)


def on_policy_pair_counts(gold: ArrayLike, group: ArrayLike | None = None) -> np.ndarray:
    """``[P]``: per prompt, the number of within-prompt pairs whose gold rewards differ (the pairs
    :func:`on_policy_accuracy` counts), so pooled accuracy = Σ_p acc_p · n_p / Σ_p n_p."""
    gold_flat, g = _groups(gold, group)
    i, j = _within_prompt_pairs(g)
    keep = gold_flat[i] != gold_flat[j]
    n_prompts = int(g.max()) + 1 if g.size else 0
    return np.bincount(g[i][keep], minlength=n_prompts).astype(np.float64)


def off_policy_accuracy(chosen: ArrayLike, rejected: ArrayLike) -> float:
    """Off-policy accuracy: :func:`pairwise_accuracy` on a fixed dataset's pairs (not sampled from the
    policy)."""
    return pairwise_accuracy(chosen, rejected)


# ------------------------------------------------------------------------------------------- bootstrap CIs
def bootstrap_indices(n: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` indices drawn with replacement from ``range(n)``, a function of ``(n, n_boot, seed)`` only:
    two models scored on the same n units get the same resamples (a paired bootstrap)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n)) if n > 0 else np.zeros((n_boot, 0), int)


def percentile_ci(samples: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval ``[q_{(1−level)/2}, q_{(1+level)/2}]`` of the finite resampled statistics."""
    s = as_numpy(samples)
    s = s[np.isfinite(s)]
    if not s.size:
        return math.nan, math.nan
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def resampled_ratio(num: ArrayLike, den: ArrayLike, idx: np.ndarray) -> np.ndarray:
    """``Σ_{u∈b} num_u / Σ_{u∈b} den_u`` for each resample b (a row of ``idx``); NaN where the denominator is 0.

    Accuracy over pairs: ``num`` = 1[pair correct], ``den`` = 1. On-policy accuracy over prompts: ``num`` = agreeing
    pairs of the prompt, ``den`` = its pairs with distinct gold (the pooled fraction of the resampled prompts)."""
    n, d = as_numpy(num)[idx].sum(1), as_numpy(den)[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1), math.nan)


def resampled_reward_variance(mean: ArrayLike, var: ArrayLike, count: ArrayLike, idx: np.ndarray) -> np.ndarray:
    """:func:`reward_variance` of each resample of prompts (rows of ``idx``), re-standardized on the resample.

    Per prompt p: ``count`` n_p, ``mean`` m_p and population ``var`` v_p of its rewards (any affine scale, e.g.
    the globally standardized ones). On a resample S the global variance is
    ``σ²_S = Σ n_p (v_p + (m_p − μ_S)²) / Σ n_p`` with ``μ_S = Σ n_p m_p / Σ n_p``, and standardizing by σ_S scales
    every within-prompt variance by 1/σ²_S, so ``RV_S = mean_{p∈S} v_p / σ²_S`` (0 where σ_S = 0)."""
    m, v, c = as_numpy(mean)[idx], as_numpy(var)[idx], as_numpy(count)[idx]
    mu = (c * m).sum(1, keepdims=True) / c.sum(1, keepdims=True)
    s2 = (c * (v + (m - mu) ** 2)).sum(1) / c.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s2 > 0, v.mean(1) / np.where(s2 > 0, s2, 1), 0.0)
