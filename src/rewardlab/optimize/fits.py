"""Gao et al. (2022) functional forms for gold reward vs. distance from the initial policy ``d = √KL``.

* best-of-n: ``gold(d) = d(α − βd)``
* RL:        ``gold(d) = d(α − β log d)``

Gold is measured relative to the initial policy (``gold(0) = 0``), so pass ``gold − gold_at_d0``. Both forms are
linear in (α, β), so an ordinary least-squares fit without intercept is exact: columns ``[d, −d²]`` for BoN and
``[d, −d·log d]`` for RL. R² is ``1 − SS_res / SS_tot`` around the mean of the observed gold.

Minimum data: a fit needs ``MIN_POINTS = 5`` distinct d > 0. Both forms pass through the origin and have two free
parameters, so two points determine (α, β) exactly (R² = 1 whatever the curve) and three leave one residual degree of
freedom, where R² ≈ 1 is still what any smooth rise-and-fall gives; five leave three, enough for R² to reject a wrong
form. With fewer points the fit is returned *insufficient*: α, β, R² are NaN (None in :meth:`GaoFit.as_dict`),
``reason`` says why, and :func:`describe` prints it as "n/a (k points)".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIN_POINTS = 5  # distinct d > 0 a fit needs (2 parameters; see the module docstring)


@dataclass
class GaoFit:
    """Fitted ``α``, ``β`` and coefficient of determination ``r2``; ``form`` is "bon" or "rl".

    ``n_points``: points passed; ``n_distinct``: distinct d > 0 among them; ``reason``: why the fit is insufficient
    (None when it is not; then α, β and R² are NaN).
    """

    form: str
    alpha: float
    beta: float
    r2: float
    n_points: int
    n_distinct: int | None = None
    reason: str | None = None

    @property
    def sufficient(self) -> bool:
        return self.reason is None

    def predict(self, d: Sequence[float] | np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=np.float64)
        return _design(self.form, d) @ np.array([self.alpha, self.beta])

    @property
    def in_form(self) -> bool:
        """Whether the fit has Gao et al.'s shape: α > 0 (gold rises at first) and β > 0 (then falls)."""
        return self.sufficient and self.alpha > 0 and self.beta > 0

    def peak(self) -> float | None:
        """``d`` at which the fitted gold is largest (BoN: α/2β; RL: exp(α/β − 1)); None outside Gao's form (α ≤ 0:
        gold never rose, so the RL form's maximum at tiny d is not a peak; β ≤ 0: it never turns) or when the fit is
        insufficient."""
        if not self.in_form:
            return None
        return self.alpha / (2 * self.beta) if self.form == "bon" else float(np.exp(self.alpha / self.beta - 1))

    def as_dict(self) -> dict:
        """The fields (non-finite floats as None: strict JSON) plus ``d_peak`` and ``sufficient``."""
        out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return out | {"d_peak": self.peak(), "sufficient": self.sufficient, "in_form": self.in_form}


def _design(form: str, d: np.ndarray) -> np.ndarray:
    if form == "bon":
        return np.stack([d, -d * d], axis=1)
    if form == "rl":
        safe = np.where(d > 0, d, 1.0)  # d·log d → 0 as d → 0
        return np.stack([d, -d * np.log(safe)], axis=1)
    raise ValueError(f"form must be 'bon' or 'rl', got {form!r}")


def fit_gao(d: Sequence[float], gold: Sequence[float], form: str, min_points: int = MIN_POINTS) -> GaoFit:
    """Least-squares fit of ``gold(d)`` to Gao et al.'s ``form`` ("bon" or "rl"). With fewer than ``min_points``
    distinct d > 0 the result is insufficient (NaN parameters and a ``reason``), never an exact-looking R² = 1."""
    d_arr, g = np.asarray(d, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if d_arr.shape != g.shape or d_arr.ndim != 1:
        raise ValueError(f"d {d_arr.shape} and gold {g.shape} must be 1-D and equal")
    _design(form, d_arr[:0])  # rejects an unknown form whatever the number of points
    ok = np.isfinite(d_arr) & np.isfinite(g)
    distinct = int(np.unique(d_arr[ok & (d_arr > 0)]).size)
    if distinct < min_points:
        return GaoFit(form=form, alpha=math.nan, beta=math.nan, r2=math.nan, n_points=len(d_arr),
                      n_distinct=distinct, reason=f"a 2-parameter fit needs ≥ {min_points} distinct d > 0")
    X, g = _design(form, d_arr[ok]), g[ok]
    (alpha, beta), *_ = np.linalg.lstsq(X, g, rcond=None)
    resid = g - X @ np.array([alpha, beta])
    ss_tot = float(((g - g.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return GaoFit(form=form, alpha=float(alpha), beta=float(beta), r2=r2, n_points=len(d_arr), n_distinct=distinct)


def fit_bon(d: Sequence[float], gold: Sequence[float], min_points: int = MIN_POINTS) -> GaoFit:
    """``gold(d) = d(α − βd)`` (Gao et al. 2022, best-of-n)."""
    return fit_gao(d, gold, "bon", min_points)


def fit_rl(d: Sequence[float], gold: Sequence[float], min_points: int = MIN_POINTS) -> GaoFit:
    """``gold(d) = d(α − β log d)`` (Gao et al. 2022, RL)."""
    return fit_gao(d, gold, "rl", min_points)


def from_dict(fit: Mapping[str, Any]) -> GaoFit:
    """A :class:`GaoFit` back from :meth:`GaoFit.as_dict` (None → NaN); older dicts without the new fields work."""
    num = {k: math.nan if fit.get(k) is None else float(fit[k]) for k in ("alpha", "beta", "r2")}
    return GaoFit(form=fit["form"], n_points=fit.get("n_points", 0), n_distinct=fit.get("n_distinct"),
                  reason=fit.get("reason"), **num)


def describe(fit: GaoFit | Mapping[str, Any] | None) -> str:
    """One line for printing: "Gao bon fit: α=… β=… R²=… peak at √KL=…", or "Gao bon fit: n/a (3 points)"."""
    if fit is None:
        return "Gao fit: n/a (no gold reward)"
    f = from_dict(fit) if isinstance(fit, Mapping) else fit
    if not f.sufficient:
        k = f.n_distinct if f.n_distinct is not None else f.n_points
        return f"Gao {f.form} fit: n/a ({k} points; {f.reason})"
    peak = f.peak()
    where = (f"peak at √KL={peak:.4g}" if peak is not None else
             "outside Gao's form (α ≤ 0: gold never rose; no peak)" if not f.alpha > 0 else "no peak (β ≤ 0)")
    return f"Gao {f.form} fit: α={f.alpha:.4g} β={f.beta:.4g} R²={f.r2:.3f} {where} ({f.n_distinct} points)"
