"""The evaluation suite: every metric of :mod:`rewardlab.evaluate.metrics` for one reward on one dataset (and,
optionally, a policy).

``evaluate_reward(reward, rows, ...)`` scores the rows and returns an :class:`EvalResult`: a JSON-ready ``metrics``
dict plus the raw arrays the plots need. The science lives in :mod:`rewardlab.evaluate.metrics` /
:mod:`rewardlab.evaluate.rewardbench`; this module only wires scores into them.

Uncertainty: accuracy, RV and on-policy accuracy get 95% percentile bootstrap CIs (``summary[KEY + "_ci"]``),
resampling pairs for accuracy and prompts for RV and on-policy accuracy (:func:`replicates`). The per-unit data
they need is kept in ``metrics`` (``pairs.correct``; the teacher's per-prompt lists), so a model loaded from an
earlier ``metrics.json`` can be compared by a paired bootstrap (:func:`paired_difference_ci`): the resamples are a
function of the number of units and the seed only, so two models on the same units get the same resamples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.data.records import KWayRow, PreferencePair, RatedRow, Response
from rewardlab.evaluate import calibration as C
from rewardlab.evaluate import metrics as M
from rewardlab.evaluate.rewardbench import KWayScores, rb2_scores
from rewardlab.evaluate.teacher import scalar, score_items, teacher_metrics


@dataclass
class EvalResult:
    """``metrics``: JSON-ready dict; ``arrays``: raw scores/lengths for plots (empty when loaded from disk)."""

    name: str
    metrics: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def response_length(response: Response) -> int:
    """Length in characters (a conversation: the sum of its messages' contents) — reward-agnostic."""
    if isinstance(response, str):
        return len(response)
    return sum(len(m.get("content", "")) for m in response)


def pair_metrics(chosen: np.ndarray, rejected: np.ndarray, pairs: Sequence[PreferencePair],
                 sections: Mapping[str, Sequence[str]] | None = None, weights: Mapping[str, float] | None = None,
                 val_fraction: float = 0.5, seed: int = 0, n_bins: int = 10,
                 members: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """All pairwise metrics from scores ``chosen``/``rejected`` (``[n]``, or ``[n, k]`` for k members/outputs,
    reduced by the mean). Ensemble disagreement is added from ``members`` = (chosen ``[n, k]``, rejected
    ``[n, k]``) member scores, which default to the ``[n, k]`` inputs when k > 1.

    Calibration: ECE/Brier/NLL of σ(Δ) on all pairs; a temperature fitted on a seeded ``val_fraction`` of the
    pairs, kept only when it helps there, and ECE/NLL at T = 1, the fitted T and the kept T on the rest
    (:func:`rewardlab.evaluate.calibration.held_out_temperature`).
    """
    c, r = scalar(chosen), scalar(rejected)
    delta = c - r
    subsets = M.subset_accuracy(c, r, [p.subset for p in pairs])
    out: dict[str, Any] = {
        "n_pairs": len(pairs),
        "accuracy": M.pairwise_accuracy(c, r),
        "tie_rate": M.tie_rate(c, r),
        "mean_margin": float(delta.mean()),
        "subsets": subsets,
        "correct": (delta > 0).astype(int).tolist(),  # per pair (ties wrong): the units of the accuracy bootstrap
    }
    if any(p.subset for p in pairs):
        acc = {k: v["accuracy"] for k, v in subsets.items()}
        out["sections"] = M.section_scores(acc, sections, weights, {k: v["n"] for k, v in subsets.items()})
    cal = C.calibration(delta, n_bins)
    perm = np.random.default_rng(seed).permutation(len(pairs))
    n_val = int(len(pairs) * val_fraction)
    if n_val >= 2 and len(pairs) - n_val >= 1:
        cal["fitted"] = C.held_out_temperature(delta, perm[:n_val], perm[n_val:], n_bins, seed=seed)
    out["calibration"] = cal
    out["length_bias"] = M.length_bias(c, r, [response_length(p.chosen) for p in pairs],
                                       [response_length(p.rejected) for p in pairs])
    if members is None and np.ndim(chosen) == 2 and np.shape(chosen)[1] > 1:
        members = (chosen, rejected)
    if members is not None:
        ens = M.ensemble_pair_disagreement(*members, ensemble_delta=delta)
        out["ensemble"] = {k: v for k, v in ens.items() if k != "std"} | {"members": int(np.shape(members[0])[1])}
    return out


class _Members:
    """Adapter: an ensemble's standardized member scores ``[n, k]`` through the Reward interface."""

    def __init__(self, ensemble):
        self.ensemble = ensemble

    def score(self, prompts, responses):
        return self.ensemble.score_members(prompts, responses)


def score_with_members(reward, prompts: Sequence, responses: Sequence, description: str = "scoring"
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """(scalar scores ``[n]``, member scores ``[n, k]`` or None). A reward with members (an ensemble,
    :func:`~rewardlab.rewards.base.member_names`) is scored once per member and aggregated with its own rule
    (``aggregate_members``: mean / WCO / UWO / BRME); a k-output reward is reduced by its ``aggregate`` when it has
    one (an imported classifier), else by the mean."""
    from rewardlab.rewards.base import member_names

    if member_names(reward) is not None:
        import torch

        mem = score_items(_Members(reward), prompts, responses, description=description)
        return M.as_numpy(reward.aggregate_members(torch.from_numpy(mem).float())), mem
    s = score_items(reward, prompts, responses, description=description)
    aggregate = getattr(reward, "aggregate", None)
    if callable(aggregate) and s.ndim == 2:  # e.g. an imported classifier's class logits: not members
        import torch

        return M.as_numpy(aggregate(torch.from_numpy(s).float())), None
    return scalar(s), (s if s.ndim == 2 and s.shape[1] > 1 else None)


def _calibrate_ensemble(reward, rows, rollout) -> str | None:
    """An ensemble that standardizes its members needs reference statistics: policy samples when there is a
    rollout (as the optimize loops do), else the evaluation data's responses. Returns what was used."""
    if not (getattr(reward, "standardize", False) and getattr(reward, "means", 0) is None
            and hasattr(reward, "calibrate")):
        return None
    if rollout is not None:
        reward.calibrate(rollout.prompts, rollout.responses)
        return "policy samples"
    prompts, responses = _items(rows)
    reward.calibrate(prompts, responses)
    return "evaluation data"


def _items(rows) -> tuple[list, list]:
    if rows and isinstance(rows[0], PreferencePair):
        return [p.prompt for p in rows for _ in (0, 1)], [x for p in rows for x in (p.chosen, p.rejected)]
    return ([row.prompt for row in rows for _ in range(len(row.chosen) + len(row.rejected))],
            [x for row in rows for x in list(row.chosen) + list(row.rejected)])


CI_KEYS = ("accuracy", "reward_variance", "on_policy_accuracy")  # summary columns with bootstrap CIs
N_BOOT, BOOT_SEED, CI_LEVEL = 2000, 0, 0.95


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def replicates(m: dict[str, Any], key: str, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray | None:
    """``[n_boot]`` bootstrap replicates of the summary column ``key`` (one of :data:`CI_KEYS`) from one model's
    ``metrics``, or None without the per-unit data. Accuracy resamples pairs; RV (re-standardized on each resample,
    :func:`~rewardlab.evaluate.metrics.resampled_reward_variance`) and on-policy accuracy (pooled over the resampled
    prompts' pairs) resample prompts."""
    if key == "accuracy":
        correct = _dig(m, ("pairs", "correct"))
        if not correct:
            return None
        c = _floats(correct)
        return M.resampled_ratio(c, np.ones_like(c), M.bootstrap_indices(len(c), n_boot, seed))
    t = m.get("teacher") or {}
    if key == "reward_variance" and t.get("reward_mean_per_prompt") is not None:
        v, mu, n = (_floats(t[k]) for k in ("reward_variance_per_prompt", "reward_mean_per_prompt",
                                             "responses_per_prompt"))
        return M.resampled_reward_variance(mu, v, n, M.bootstrap_indices(len(v), n_boot, seed))
    if key == "on_policy_accuracy" and t.get("on_policy_pairs_per_prompt") is not None:
        acc, n = _floats(t["on_policy_accuracy_per_prompt"]), _floats(t["on_policy_pairs_per_prompt"])
        agree = np.where(n > 0, np.nan_to_num(acc) * n, 0.0)
        return M.resampled_ratio(agree, n, M.bootstrap_indices(len(n), n_boot, seed))
    return None


def paired_difference_ci(a: dict[str, Any], b: dict[str, Any], key: str, level: float = CI_LEVEL
                         ) -> tuple[float, float] | None:
    """Paired bootstrap CI of ``key(a) − key(b)``: both models' statistics on the same resamples of the same units
    (pairs or prompts). None when either lacks the per-unit data or they were measured on different units (another
    data file, or another number of pairs / prompts)."""
    ra, rb = replicates(a, key), replicates(b, key)
    if ra is None or rb is None or _units(a, key) != _units(b, key):
        return None
    if key == "accuracy" and a.get("data") != b.get("data"):
        return None
    return M.percentile_ci(ra - rb, level)


def _units(m: dict[str, Any], key: str) -> int:
    if key == "accuracy":
        return len(_dig(m, ("pairs", "correct")) or [])
    return len(_dig(m, ("teacher", "reward_variance_per_prompt")) or [])


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """The comparison-table columns of one model, with ``KEY_ci`` = [lo, hi] for each of :data:`CI_KEYS`."""
    get = lambda *keys: _dig(m, keys)  # noqa: E731
    out = {
        "accuracy": get("pairs", "accuracy"), "tie_rate": get("pairs", "tie_rate"),
        "rb1_overall": get("pairs", "sections", "overall"), "rb2_overall": get("kway", "overall"),
        "ece": get("pairs", "calibration", "ece"), "brier": get("pairs", "calibration", "brier"),
        "length_spearman": get("pairs", "length_bias", "spearman"),
        "acc_chosen_shorter": get("pairs", "length_bias", "acc_chosen_shorter"),
        "acc_chosen_longer": get("pairs", "length_bias", "acc_chosen_longer"),
        "reward_variance": get("teacher", "reward_variance"),
        "on_policy_accuracy": get("teacher", "on_policy_accuracy"),
        "attribute_mse": get("attributes", "mean_mse"), "attribute_pearson": get("attributes", "mean_pearson"),
        "attribute_spearman": get("attributes", "mean_spearman"),
    }
    for key in CI_KEYS:
        rep = replicates(m, key)
        if rep is not None:
            out[f"{key}_ci"] = list(M.percentile_ci(rep, CI_LEVEL))
    return out


def _dig(d: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def evaluate_reward(reward, rows: Sequence[PreferencePair | KWayRow] | None, name: str,
                    sections: Mapping[str, Sequence[str]] | None = None, weights: Mapping[str, float] | None = None,
                    rollout=None, gold=None, val_fraction: float = 0.5, seed: int = 0,
                    sampling=None, rated: Sequence[RatedRow] | None = None) -> EvalResult:
    """Evaluate ``reward`` on ``rows`` (all pairs, or all k-way rows), on ``rated`` rows (per-attribute MSE, Pearson
    and Spearman of its attribute outputs, :mod:`rewardlab.evaluate.attributes`) and, given a ``rollout`` of a
    policy, as a teacher (RV; on-policy accuracy when ``gold`` is given). The same rollout can be reused across
    rewards; ``sampling`` is the :class:`~rewardlab.evaluate.teacher.SamplingConfig` it was drawn with (recorded)."""
    metrics: dict[str, Any] = {"name": name}
    arrays: dict[str, np.ndarray] = {}
    if rated:
        from rewardlab.evaluate.attributes import evaluate_attributes

        metrics["attributes"] = evaluate_attributes(reward, rated, description=f"attributes of {name}")
    calibrated_on = _calibrate_ensemble(reward, rows, rollout)
    if calibrated_on:
        metrics["ensemble_standardized_on"] = calibrated_on
    if rows and isinstance(rows[0], PreferencePair):
        prompts, responses = _items(rows)
        s, mem = score_with_members(reward, prompts, responses, description=f"scoring {name}")
        chosen, rejected = s[0::2], s[1::2]
        members = (mem[0::2], mem[1::2]) if mem is not None else None
        metrics["pairs"] = pair_metrics(chosen, rejected, rows, sections, weights, val_fraction, seed,
                                        members=members)
        arrays.update(chosen=chosen, rejected=rejected,
                      chosen_len=np.array([response_length(p.chosen) for p in rows], dtype=float),
                      rejected_len=np.array([response_length(p.rejected) for p in rows], dtype=float))
    elif rows:
        prompts, responses = _items(rows)
        s, _ = score_with_members(reward, prompts, responses, description=f"scoring {name}")
        krows, pos = [], 0
        for row in rows:
            nc, nr = len(row.chosen), len(row.rejected)
            krows.append(KWayScores(s[pos : pos + nc], s[pos + nc : pos + nc + nr], row.subset, row.id))
            pos += nc + nr
        rb2 = rb2_scores(krows)
        metrics["kway"] = {"n_rows": len(rows), "overall": rb2["overall"], "subsets": rb2["subsets"]}
        is_c = np.concatenate([np.r_[np.ones(len(r.chosen)), np.zeros(len(r.rejected))] for r in rows]).astype(bool)
        lens = np.array([response_length(x) for x in responses], dtype=float)
        arrays.update(chosen=s[is_c], rejected=s[~is_c], chosen_len=lens[is_c], rejected_len=lens[~is_c])
    if rollout is not None:
        metrics["teacher"] = teacher_metrics(reward, rollout=rollout, gold=gold, config=sampling)
    metrics["summary"] = _summary(metrics)
    return EvalResult(name, metrics, arrays)


def json_ready(obj: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars/arrays by Python values, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
