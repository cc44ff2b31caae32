"""The ranking rule of `rewardlab teachers`: direction first, then speed; ties are ties.

1. **Direction.** A reward is a teacher only if it orders the policy's own samples the way the gold does: on-policy
   accuracy (Razin et al. 2025) with a 95% bootstrap CI over prompts. CI above 0.5 → *aligned*; CI below 0.5 →
   *misaligned on this policy*; CI containing 0.5 → *not shown to be aligned*. Without a gold the accuracy on
   ``--data`` (off-policy) stands in, and the verdict says so; with neither, direction is unchecked. Tiers are
   ranked aligned > unchecked > not shown > misaligned, whatever the variance: high reward variance from a
   misaligned reward is fast optimization in the wrong direction.
2. **Speed, within a tier.** When RL probes ran, the realized gold gain (mean over probe seeds) orders the tier —
   the probes are the evidence. Without probes, reward variance does (Razin et al.: at a given direction, higher
   RV ⇒ larger policy-gradient signal ⇒ faster gold improvement early). Misaligned rewards are ordered by their
   direction metric (least wrong first).
3. **Ties.** Neighbours in a tier are separated only when the paired 95% CI of the difference of the ordering key
   excludes 0: RV on the same bootstrap resamples of prompts, realized gain on the same probe seeds (percentile
   bootstrap over seeds; with 3 seeds, roughly "every seed agrees"). Otherwise they share a rank and the verdict
   says what would separate them.

Everything here is a pure function of the numbers, so the rule is tested without models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.evaluate.metrics import bootstrap_indices, percentile_ci, spearman

ALIGNED, UNCHECKED, UNCLEAR, MISALIGNED = "aligned", "direction unchecked", "not shown to be aligned", "misaligned"
TIER_ORDER = {ALIGNED: 0, UNCHECKED: 1, UNCLEAR: 2, MISALIGNED: 3}
LEVEL = 0.95


@dataclass
class Candidate:
    """One reward's numbers. ``rv_replicates``: RV on bootstrap resamples of prompts that are the same for every
    candidate (paired). ``gains`` / ``proxy_gains``: realized gold / proxy gain of the RL probe, one per seed, the
    seeds the same for every candidate (None: not probed)."""

    reward: str
    metrics: dict[str, float | None]
    direction_metric: str | None = None  # "on_policy_accuracy" | "accuracy" | None
    direction_ci: tuple[float, float] | None = None
    rv_replicates: np.ndarray | None = None
    gains: np.ndarray | None = None
    proxy_gains: np.ndarray | None = None
    extra_flags: list[str] = field(default_factory=list)

    @property
    def direction(self) -> float | None:
        return self.metrics.get(self.direction_metric) if self.direction_metric else None


def tier(c: Candidate) -> str:
    """The direction tier of step 1 (module docstring)."""
    if c.direction_metric is None:
        return UNCHECKED
    lo, hi = c.direction_ci or (math.nan, math.nan)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return UNCLEAR
    return ALIGNED if lo > 0.5 else MISALIGNED if hi < 0.5 else UNCLEAR


def _ci_text(c: Candidate) -> str:
    name = {"on_policy_accuracy": "on-policy accuracy", "accuracy": "accuracy on --data"}.get(
        c.direction_metric or "", "direction")
    lo, hi = c.direction_ci or (math.nan, math.nan)
    return f"{name} {_f(c.direction)} [{_f(lo)}, {_f(hi)}]"


def _f(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def flags(c: Candidate) -> list[str]:
    """Plain-language flags: direction, and reward hacking in the probe (proxy up while gold went down)."""
    t, out = tier(c), list(c.extra_flags)
    if t == MISALIGNED:
        out.append(f"misaligned on this policy: {_ci_text(c)} is below 0.5")
    elif t == UNCLEAR:
        out.append(f"not shown to be aligned on this policy: {_ci_text(c)} includes 0.5")
    if c.gains is not None and c.proxy_gains is not None and len(c.gains):
        lo, hi = _mean_ci(c.gains)
        proxy, gold = float(np.mean(c.proxy_gains)), float(np.mean(c.gains))
        if proxy > 0 and hi < 0:
            out.append(f"reward hacking in the probe: proxy +{proxy:.3g} while gold {gold:+.3g} (CI [{lo:.3g}, "
                       f"{hi:.3g}])")
        elif proxy > 0 and gold < 0:
            out.append(f"possible reward hacking in the probe: proxy +{proxy:.3g} while gold {gold:+.3g} (its CI "
                       f"[{lo:.3g}, {hi:.3g}] includes 0)")
    return out


def _mean_ci(x: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``x`` (resampling its entries)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return (math.nan, math.nan)
    return percentile_ci(x[bootstrap_indices(x.size, 2000, seed)].mean(1), LEVEL)


def _key(c: Candidate, by_gain: bool) -> float:
    v = float(np.mean(c.gains)) if by_gain else c.metrics.get("reward_variance")
    return v if v is not None and math.isfinite(v) else -math.inf


def difference_ci(a: Candidate, b: Candidate, by_gain: bool) -> tuple[float, float] | None:
    """Paired 95% CI of key(a) − key(b), or None when the paired data is missing."""
    if by_gain:
        if a.gains is None or b.gains is None or len(a.gains) != len(b.gains):
            return None
        return _mean_ci(np.asarray(a.gains) - np.asarray(b.gains))
    if a.rv_replicates is None or b.rv_replicates is None or len(a.rv_replicates) != len(b.rv_replicates):
        return None
    return percentile_ci(np.asarray(a.rv_replicates) - np.asarray(b.rv_replicates), LEVEL)


def order(candidates: Sequence[Candidate], by_gain: bool) -> list[tuple[Candidate, str]]:
    """Candidates sorted by tier, then by the key of step 2 (descending); returns (candidate, tier)."""
    def sort_key(c: Candidate) -> tuple[int, float]:
        t = tier(c)
        if t == MISALIGNED:
            d = c.direction
            return TIER_ORDER[t], -(d if d is not None and math.isfinite(d) else -math.inf)
        return TIER_ORDER[t], -_key(c, by_gain)

    return [(c, tier(c)) for c in sorted(candidates, key=sort_key)]


def _separated(ci: tuple[float, float] | None) -> bool:
    """Whether a paired CI of (previous − next) lies above 0 (None: no paired data, so not separated)."""
    return ci is not None and ci[0] > 0


def rank_groups(ranked: Sequence[tuple[Candidate, str]], by_gain: bool) -> list[list[int]]:
    """Indices into ``ranked`` grouped into shared ranks (step 3). A new group starts at a new tier, or when the
    paired CI against the previous candidate excludes 0."""
    groups: list[list[int]] = []
    for i, (c, t) in enumerate(ranked):
        if groups:
            p, pt = ranked[groups[-1][-1]]
            if t == pt and t != MISALIGNED and not _separated(difference_ci(p, c, by_gain)):
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def agreement(candidates: Sequence[Candidate], predicted_rank: dict[str, int]) -> dict[str, float | None]:
    """Spearman between each metric and the realized gold gain across rewards (None: not probed or < 3 rewards).
    ``verdict_order`` uses minus the predicted rank (rank 1 = best), so +1 means the pre-probe order was right."""
    probed = [c for c in candidates if c.gains is not None and len(c.gains)]
    if len(probed) < 3:
        return {}
    gain = [float(np.mean(c.gains)) for c in probed]
    out: dict[str, float | None] = {}
    for key in ("accuracy", "on_policy_accuracy", "reward_variance"):
        vals = [c.metrics.get(key) for c in probed]
        if all(v is not None and math.isfinite(v) for v in vals):
            out[key] = spearman(vals, gain)
    out["verdict_order"] = spearman([-predicted_rank[c.reward] for c in probed], gain)
    return out


def _separate_hint(by_gain: bool) -> str:
    return ("more probe seeds or a longer probe (--probe-seeds, --probe-steps)" if by_gain else
            "more prompts or more samples per prompt (--num-samples), or RL probes with --gold")


def decide(candidates: Sequence[Candidate]) -> dict[str, Any]:
    """The verdict: ``ranking`` (best first; tied rewards share ``rank``), ``rule``, ``verdict`` (one line),
    ``predicted_ranking`` (the rule without probes) and ``agreement`` (Spearman with the realized gain)."""
    by_gain = bool(candidates) and all(c.gains is not None and len(c.gains) for c in candidates)
    ranked = order(candidates, by_gain)
    groups = rank_groups(ranked, by_gain)
    rank_of = {i: g + 1 for g, idx in enumerate(groups) for i in idx}
    ranking = []
    for i, (c, t) in enumerate(ranked):
        tied = [ranked[j][0].reward for j in groups[rank_of[i] - 1] if j != i]
        ranking.append({"reward": c.reward, "rank": rank_of[i], "tier": t, "tied_with": tied, "flags": flags(c),
                        "metrics": c.metrics, "direction_metric": c.direction_metric,
                        "direction_ci": list(c.direction_ci) if c.direction_ci else None,
                        "probe_gold_gain": None if c.gains is None else [float(g) for g in c.gains],
                        "probe_gold_gain_mean": None if c.gains is None else float(np.mean(c.gains)),
                        "probe_gold_gain_ci": None if c.gains is None else list(_mean_ci(c.gains)),
                        "probe_proxy_gain_mean": None if c.proxy_gains is None else float(np.mean(c.proxy_gains))})
    predicted = order(candidates, by_gain=False)
    pred_groups = rank_groups(predicted, by_gain=False)
    predicted_rank = {predicted[i][0].reward: g + 1 for g, idx in enumerate(pred_groups) for i in idx}
    return {"ranking": ranking, "rule": rule_text(candidates, by_gain), "verdict": verdict_line(ranking, by_gain),
            "predicted_ranking": [{"reward": c.reward, "rank": predicted_rank[c.reward]} for c, _ in predicted],
            "agreement": agreement(candidates, predicted_rank), "ordered_by": "probe gold gain" if by_gain
            else "reward variance"}


def rule_text(candidates: Sequence[Candidate], by_gain: bool) -> str:
    metric = next((c.direction_metric for c in candidates if c.direction_metric), None)
    direction = {"on_policy_accuracy": "on-policy accuracy (pairs of the policy's samples ordered by the gold)",
                 "accuracy": "accuracy on --data (off-policy: no gold was given, so direction on the policy's own "
                             "samples is not measured)"}.get(metric or "", "not checked (no --gold, no --data)")
    speed = ("realized gold gain of the RL probe (mean over seeds)" if by_gain else
             "reward variance under the policy (Razin et al. 2025)")
    return (f"direction first — {direction}: 95% CI above 0.5 = aligned, below = misaligned, ranked below every "
            f"aligned reward whatever its variance; then, within a tier, by {speed}; neighbours whose paired 95% "
            "CI of the difference includes 0 share a rank")


def verdict_line(ranking: Sequence[dict[str, Any]], by_gain: bool) -> str:
    if not ranking:
        return "no rewards"
    top = [r for r in ranking if r["rank"] == 1]
    names = ", ".join(r["reward"] for r in top)
    if top[0]["tier"] == MISALIGNED:
        return f"no reward is aligned on this policy: every one orders its samples against the gold (best: {names})"
    if top[0]["tier"] == UNCLEAR:
        return (f"no reward is shown to be aligned on this policy at this budget (closest: {names}); more prompts "
                "or samples per prompt would tell")
    what = "best teacher for this policy" + (" (direction unchecked)" if top[0]["tier"] == UNCHECKED else "")
    if len(top) == 1:
        return f"{what}: {names}"
    return (f"{names} cannot be told apart at this budget (tied for {what}); {_separate_hint(by_gain)} would "
            "separate them")
