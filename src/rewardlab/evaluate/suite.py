"""The evaluation suite: every metric of DESIGN §5 for one reward on one dataset (and, optionally, a policy).

``evaluate_reward(reward, rows, ...)`` scores the rows and returns an :class:`EvalResult`: a JSON-ready ``metrics``
dict plus the raw arrays the plots need. The science lives in :mod:`rewardlab.evaluate.metrics` /
:mod:`rewardlab.evaluate.rewardbench`; this module only wires scores into them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.data.records import KWayRow, PreferencePair, Response
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
    pairs and ECE/NLL before/after it on the rest (``test``).
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
    }
    if any(p.subset for p in pairs):
        acc = {k: v["accuracy"] for k, v in subsets.items()}
        out["sections"] = M.section_scores(acc, sections, weights, {k: v["n"] for k, v in subsets.items()})
    cal = M.calibration(delta, n_bins)
    perm = np.random.default_rng(seed).permutation(len(pairs))
    n_val = int(len(pairs) * val_fraction)
    if n_val >= 2 and len(pairs) - n_val >= 1:
        val, test = perm[:n_val], perm[n_val:]
        lo, hi = 1e-2, 1e2
        t = M.fit_temperature(delta[val], bounds=(lo, hi))
        # on a separable validation split (every Δ > 0) the NLL has no finite minimizer: T hits the search bound
        cal["fitted"] = {"temperature": t, "at_bound": not lo * 1.01 < t < hi / 1.01,
                         "n_val": n_val, "n_test": len(test),
                         "test_ece_raw": M.expected_calibration_error(M.preference_probs(delta[test]), None, n_bins),
                         "test_ece_scaled": M.expected_calibration_error(M.preference_probs(delta[test], t), None,
                                                                         n_bins),
                         "test_nll_raw": M.preference_nll(delta[test]),
                         "test_nll_scaled": M.preference_nll(delta[test], t)}
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
    """(scalar scores ``[n]``, member scores ``[n, k]`` or None). An ensemble (``score_members``) is scored once
    per member and aggregated with its own rule (mean / WCO / UWO); a k-output reward is reduced by the mean."""
    if hasattr(reward, "score_members") and hasattr(reward, "method"):
        import torch

        from rewardlab.rewards.ensemble import aggregate

        mem = score_items(_Members(reward), prompts, responses, description=description)
        agg = aggregate(torch.from_numpy(mem).float(), reward.method, getattr(reward, "uwo_lambda", 0.5))
        return M.as_numpy(agg), mem
    s = score_items(reward, prompts, responses, description=description)
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


def _summary(m: dict[str, Any]) -> dict[str, float | None]:
    """The comparison-table columns of one model."""
    get = lambda *keys: _dig(m, keys)  # noqa: E731
    return {
        "accuracy": get("pairs", "accuracy"), "tie_rate": get("pairs", "tie_rate"),
        "rb1_overall": get("pairs", "sections", "overall"), "rb2_overall": get("kway", "overall"),
        "ece": get("pairs", "calibration", "ece"), "brier": get("pairs", "calibration", "brier"),
        "length_spearman": get("pairs", "length_bias", "spearman"),
        "acc_chosen_shorter": get("pairs", "length_bias", "acc_chosen_shorter"),
        "acc_chosen_longer": get("pairs", "length_bias", "acc_chosen_longer"),
        "reward_variance": get("teacher", "reward_variance"),
        "on_policy_accuracy": get("teacher", "on_policy_accuracy"),
    }


def _dig(d: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def evaluate_reward(reward, rows: Sequence[PreferencePair | KWayRow] | None, name: str,
                    sections: Mapping[str, Sequence[str]] | None = None, weights: Mapping[str, float] | None = None,
                    rollout=None, gold=None, val_fraction: float = 0.5, seed: int = 0,
                    sampling=None) -> EvalResult:
    """Evaluate ``reward`` on ``rows`` (all pairs, or all k-way rows) and, given a ``rollout`` of a policy, as a
    teacher (RV; on-policy accuracy when ``gold`` is given). The same rollout can be reused across rewards;
    ``sampling`` is the :class:`~rewardlab.evaluate.teacher.SamplingConfig` it was drawn with (recorded)."""
    metrics: dict[str, Any] = {"name": name}
    arrays: dict[str, np.ndarray] = {}
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
