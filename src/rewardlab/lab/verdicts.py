"""Claims and the rules that decide them: pure functions of measured numbers, nothing hard-coded.

A :class:`Claim` carries the paper's direction, the rule (in words) and the numbers the rule was computed from
(one value per seed), so a reader can recompute every verdict from results.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

# A direction "holds consistently" when the mean over seeds has the claimed sign AND at least this fraction of the
# seeds agree with it (with 3 seeds: all 3; with 5: 4 of 5).
MIN_AGREE = 0.75


@dataclass
class Claim:
    id: str
    experiment: str
    paper: str
    statement: str        # the paper's claim, as tested here
    direction: str        # the paper's reported direction
    rule: str             # how the verdict is computed from the numbers
    measured: str         # the numbers, human readable, with spread over seeds
    reproduced: bool
    values: dict = field(default_factory=dict)  # raw numbers (per seed) behind the verdict

    @property
    def verdict(self) -> str:
        return "reproduced" if self.reproduced else "not reproduced"

    def as_dict(self) -> dict:
        return asdict(self) | {"verdict": self.verdict}


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]


def consistently_positive(values: Sequence[float], min_agree: float = MIN_AGREE) -> bool:
    """True iff the mean of the (finite) values is > 0 and at least ``min_agree`` of them are > 0."""
    v = _finite(values)
    return bool(v.size and v.mean() > 0 and (v > 0).mean() >= min_agree)


def consistently_negative(values: Sequence[float], min_agree: float = MIN_AGREE) -> bool:
    return consistently_positive([-x for x in values], min_agree)


def peaks_then_falls(gold: Sequence[float], min_drop: float = 0.1) -> bool:
    """Over-optimization shape of one curve (gold along increasing optimization, gold[0] = start): the peak is
    not the last point and the last point lies below the peak by at least ``min_drop`` of the peak's gain
    (gold_peak − gold[0])."""
    g = np.asarray(gold, dtype=np.float64)
    if g.size < 3 or not np.isfinite(g).all():
        return False
    i = int(g.argmax())
    gain = g[i] - g[0]
    return bool(i < g.size - 1 and gain > 0 and g[i] - g[-1] >= min_drop * gain)


def fmt(values: Sequence[float], digits: int = 2) -> str:
    """'mean ± sd (n)' over seeds, or the single value; NaN-aware."""
    v = _finite(values)
    if not v.size:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} (n={v.size})"


def mean(values: Sequence[float]) -> float:
    v = _finite(values)
    return float(v.mean()) if v.size else math.nan
