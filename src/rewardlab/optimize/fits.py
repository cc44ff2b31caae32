"""Gao et al. (2022) functional forms for gold reward vs. distance from the initial policy ``d = √KL``.

* best-of-n: ``gold(d) = d(α − βd)``
* RL:        ``gold(d) = d(α − β log d)``

Gold is measured relative to the initial policy (``gold(0) = 0``), so pass ``gold − gold_at_d0``. Both forms are
linear in (α, β), so an ordinary least-squares fit without intercept is exact: columns ``[d, −d²]`` for BoN and
``[d, −d·log d]`` for RL. R² is ``1 − SS_res / SS_tot`` around the mean of the observed gold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class GaoFit:
    """Fitted ``α``, ``β`` and coefficient of determination ``r2``; ``form`` is "bon" or "rl"."""

    form: str
    alpha: float
    beta: float
    r2: float
    n_points: int

    def predict(self, d: Sequence[float] | np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=np.float64)
        return _design(self.form, d) @ np.array([self.alpha, self.beta])

    def peak(self) -> float | None:
        """``d`` at which the fitted gold is largest (BoN: α/2β; RL: exp(α/β − 1)); None if it never turns."""
        if self.beta <= 0:
            return None
        return self.alpha / (2 * self.beta) if self.form == "bon" else float(np.exp(self.alpha / self.beta - 1))

    def as_dict(self) -> dict:
        return asdict(self) | {"d_peak": self.peak()}


def _design(form: str, d: np.ndarray) -> np.ndarray:
    if form == "bon":
        return np.stack([d, -d * d], axis=1)
    if form == "rl":
        safe = np.where(d > 0, d, 1.0)  # d·log d → 0 as d → 0
        return np.stack([d, -d * np.log(safe)], axis=1)
    raise ValueError(f"form must be 'bon' or 'rl', got {form!r}")


def fit_gao(d: Sequence[float], gold: Sequence[float], form: str) -> GaoFit:
    """Least-squares fit of ``gold(d)`` to Gao et al.'s ``form`` ("bon" or "rl"); needs ≥ 2 points."""
    d_arr, g = np.asarray(d, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if d_arr.shape != g.shape or d_arr.ndim != 1:
        raise ValueError(f"d {d_arr.shape} and gold {g.shape} must be 1-D and equal")
    if len(d_arr) < 2:
        raise ValueError("need at least 2 points to fit alpha and beta")
    X = _design(form, d_arr)
    (alpha, beta), *_ = np.linalg.lstsq(X, g, rcond=None)
    resid = g - X @ np.array([alpha, beta])
    ss_tot = float(((g - g.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return GaoFit(form=form, alpha=float(alpha), beta=float(beta), r2=r2, n_points=len(d_arr))


def fit_bon(d: Sequence[float], gold: Sequence[float]) -> GaoFit:
    """``gold(d) = d(α − βd)`` (Gao et al. 2022, best-of-n)."""
    return fit_gao(d, gold, "bon")


def fit_rl(d: Sequence[float], gold: Sequence[float]) -> GaoFit:
    """``gold(d) = d(α − β log d)`` (Gao et al. 2022, RL)."""
    return fit_gao(d, gold, "rl")
