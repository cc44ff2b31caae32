"""Per-attribute regression metrics of a multi-objective reward on rated rows (``rewardlab eval`` with rows
``{"prompt", "response", "attributes": {...}}``, HelpSteer2 style).

A multi-objective reward (ArmoRM's ridge heads, a DPA reward's base, a k-output checkpoint that names its outputs)
predicts one score per attribute, ``r̂_a(x, y)``; a rated row carries the human rating ``y_a``. For each attribute
``a``, over the ``n_a`` rows rated on ``a`` (rows may rate a subset of the attributes):

    MSE_a      = (1/n_a) Σ (r̂_a − y_a)²
    Pearson_a  = Σ (r̂_a − mean r̂_a)(y_a − mean y_a) / sqrt(Σ (r̂_a − mean r̂_a)² · Σ (y_a − mean y_a)²)
    Spearman_a = Pearson of the average ranks (ties share their mean rank)

These are the metrics of a regression reward model's heads (HelpSteer2, Wang et al. 2024; ArmoRM's stage-1
regression, Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward Modeling and
Mixture-of-Experts"). MSE is in the rating's units (the heads regress the raw ratings); Pearson and Spearman are
scale-free. The raw attribute outputs are compared, not ArmoRM's decorrelated ones (those are not predictions of
the rating). A preference score (ArmoRM's gate, a k-head mean) is measured on pairs by the pairwise metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlab.data.records import RatedRow
from rewardlab.errors import UserError
from rewardlab.evaluate.metrics import as_numpy, pearson, spearman


def mse(pred: Any, target: Any) -> float:
    """``(1/n) Σ (pred − target)²``; NaN for no items."""
    p, t = as_numpy(pred), as_numpy(target)
    return float(np.mean((p - t) ** 2)) if p.size else math.nan


def regression_metrics(pred: Any, target: Any) -> dict[str, float | int]:
    """MSE, Pearson and Spearman of ``pred`` against ``target`` (1-D, same length); a correlation is NaN when either
    side is constant."""
    p, t = as_numpy(pred).astype(np.float64), as_numpy(target).astype(np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"pred {p.shape} and target {t.shape} must be 1-D of one length")
    return {"n": int(p.size), "mse": mse(p, t), "pearson": pearson(p, t) if p.size > 1 else math.nan,
            "spearman": spearman(p, t) if p.size > 1 else math.nan, "mean_pred": float(p.mean()) if p.size else
            math.nan, "mean_rating": float(t.mean()) if p.size else math.nan}


def attribute_metrics(pred: np.ndarray, names: Sequence[str], rows: Sequence[RatedRow]) -> dict[str, Any]:
    """Per-attribute :func:`regression_metrics` of ``pred`` (``[n, k]``, column j = attribute ``names[j]``, row i =
    ``rows[i]``) against the rows' ratings, each over the rows rated on that attribute; plus the attributes rated
    but not predicted (``not_in_model``), predicted but never rated (``not_rated``) and the macro means over the
    measured attributes. A UserError when no rated attribute is one the model predicts."""
    pred = np.asarray(pred, dtype=np.float64)
    rated = sorted({a for r in rows for a in r.attributes})
    common = [a for a in names if a in rated]
    if not common:
        raise UserError(f"{rows[0].source if rows else 'rated rows'}: the rows rate {rated} but the reward's "
                        f"attributes are {list(names)}; none in common")
    per: dict[str, Any] = {}
    for a in common:
        j = list(names).index(a)
        idx = [i for i, r in enumerate(rows) if a in r.attributes]
        per[a] = regression_metrics(pred[idx, j], [float(rows[i].attributes[a]) for i in idx])
    out: dict[str, Any] = {"n_rows": len(rows), "attributes": per,
                           "not_in_model": [a for a in rated if a not in names],
                           "not_rated": [a for a in names if a not in rated]}
    for key in ("mse", "pearson", "spearman"):
        vals = [v[key] for v in per.values() if not math.isnan(v[key])]
        out[f"mean_{key}"] = float(np.mean(vals)) if vals else math.nan
    return out


def evaluate_attributes(reward: Any, rows: Sequence[RatedRow], description: str = "scoring attributes"
                        ) -> dict[str, Any]:
    """Score every rated row's response with ``reward``'s per-attribute outputs
    (:func:`~rewardlab.rewards.base.attribute_names`) and return :func:`attribute_metrics`."""
    from rewardlab.evaluate.teacher import score_items
    from rewardlab.rewards.base import attribute_names

    names = attribute_names(reward)
    if not names:
        raise UserError(f"{getattr(reward, 'name', 'the reward')}: rated rows need a reward with named per-attribute "
                        "outputs (an ArmoRM checkpoint, armo:/dpa: specs, or a k-output checkpoint whose "
                        "rewardlab.json names its 'attributes'); this one has none")
    prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
    pred = score_items(_Attributes(reward), prompts, responses, description=description)
    if pred.ndim != 2 or pred.shape[1] != len(names):
        raise UserError(f"{getattr(reward, 'name', 'the reward')}: attributes() gave shape {pred.shape} for "
                        f"{len(names)} attributes")
    return attribute_metrics(pred, names, rows)


class _Attributes:
    """Adapter: a reward's ``attributes`` through the ``score`` interface (for the batched scoring helper)."""

    def __init__(self, reward: Any):
        self.reward = reward

    def score(self, prompts, responses):
        return self.reward.attributes(prompts, responses)
