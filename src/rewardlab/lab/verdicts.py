"""Claims and the tests that decide them: pure functions of measured numbers, nothing hard-coded.

Every claim is decided from one number per seed (each seed is a new world), by the same two-sided evidence rule:

* **reproduced** — the effect has the paper's sign in a sign test over seeds with one-sided p < 0.05 (exact
  binomial, H₀: each sign equally likely; 5 of 5 seeds, 15 of 20) AND the 95% percentile-bootstrap CI of
  the mean over seeds excludes 0 on the paper's side;
* **not reproduced** — the same evidence for the opposite sign (the data contradict the claim);
* **inconclusive** — neither (the CI straddles 0, or the sign test has p ≥ 0.05): the run cannot tell.

Per-seed yes/no outcomes (a curve has a shape or not) use the sign test alone. A claim made of several parts is
reproduced when every part is, not reproduced when any part is, else inconclusive. A claim that is not
reproduced carries a *reason* computed from the numbers (the failing test, plus the experiment's diagnosis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED = "reproduced", "inconclusive", "not reproduced"
ALPHA = 0.05          # one-sided level of the sign test
CI_LEVEL = 0.95       # bootstrap CI of the mean over seeds
N_BOOT = 10_000
RULE = (f"reproduced = the effect has the paper's sign with a one-sided sign test p < {ALPHA:g} over seeds and a "
        f"{CI_LEVEL:.0%} bootstrap CI of the mean that excludes 0; not reproduced = the same evidence for the "
        "opposite sign; inconclusive = neither")


@dataclass
class Evidence:
    """The outcome of one test: verdict, a one-line summary of the evidence, and stats for results.json."""

    verdict: str
    summary: str
    stats: dict = field(default_factory=dict)
    what: str = ""        # which part of a claim this is (empty for a single test)
    failing: str = ""     # of a combined test: the reasons of the parts that did not hold

    @property
    def reason(self) -> str:
        if self.verdict == REPRODUCED:
            return ""
        return self.failing or (f"{self.what}: " if self.what else "") + self.summary


def sign_test_p(k: int, n: int) -> float:
    """One-sided exact sign test: P(X ≥ k) for X ~ Binomial(n, ½)."""
    if n <= 0:
        return 1.0
    return float(sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n)


def bootstrap_ci(values: Sequence[float], level: float = CI_LEVEL, n_boot: int = N_BOOT,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (resampling seeds with replacement); a single value gives (v, v)."""
    v = _finite(values)
    if not v.size:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def check_sign(values: Sequence[float], sign: int = 1, what: str = "") -> Evidence:
    """Is the per-seed effect ``values`` of sign ``sign`` (+1: > 0, −1: < 0)? Exact zeros count as no sign."""
    v = _finite(values) * sign
    n = int((v != 0).sum())
    k_for, k_against = int((v > 0).sum()), int((v < 0).sum())
    if not v.size:
        return Evidence(INCONCLUSIVE, "no finite values", {}, what)
    lo, hi = bootstrap_ci(v)
    p_for, p_against = sign_test_p(k_for, n), sign_test_p(k_against, n)
    ci = sorted((sign * lo, sign * hi))
    stats = {"n": int(v.size), "agree": k_for, "disagree": k_against, "p_sign": p_for, "p_opposite": p_against,
             "mean": float(sign * v.mean()), "ci": ci}
    side = "> 0" if sign > 0 else "< 0"
    text = (f"{k_for}/{v.size} seeds {side} (sign-test p = {p_for:.3f}), mean {sign * v.mean():+.3f}, "
            f"{CI_LEVEL:.0%} CI [{ci[0]:+.3f}, {ci[1]:+.3f}]")
    if p_for < ALPHA and lo > 0:
        return Evidence(REPRODUCED, text, stats, what)
    if p_against < ALPHA and hi < 0:
        return Evidence(NOT_REPRODUCED, text + " — the opposite sign", stats, what)
    why = "the CI straddles 0" if lo <= 0 <= hi else f"sign-test p = {p_for:.3f} ≥ {ALPHA:g}"
    return Evidence(INCONCLUSIVE, f"{text} — {why}", stats, what)


def check_outcomes(outcomes: Sequence[bool], what: str = "") -> Evidence:
    """Did a per-seed yes/no outcome hold? Sign test on the count (H₀: yes and no equally likely)."""
    n, k = len(outcomes), int(sum(bool(o) for o in outcomes))
    p_for, p_against = sign_test_p(k, n), sign_test_p(n - k, n)
    stats = {"n": n, "agree": k, "p_sign": p_for, "p_opposite": p_against, "per_seed": [bool(o) for o in outcomes]}
    text = f"holds in {k}/{n} seeds (sign-test p = {p_for:.3f})"
    if n and p_for < ALPHA:
        return Evidence(REPRODUCED, text, stats, what)
    if n and p_against < ALPHA:
        return Evidence(NOT_REPRODUCED, text + f" — fails in {n - k}/{n}", stats, what)
    return Evidence(INCONCLUSIVE, text + f" — p ≥ {ALPHA:g} either way", stats, what)


def all_of(*tests: Evidence) -> Evidence:
    """All parts must hold: not reproduced if any part is, reproduced if all are, else inconclusive."""
    verdicts = {t.verdict for t in tests}
    verdict = (NOT_REPRODUCED if NOT_REPRODUCED in verdicts else REPRODUCED if verdicts == {REPRODUCED}
               else INCONCLUSIVE)
    summary = "; ".join((f"{t.what}: " if t.what else "") + t.summary for t in tests)
    failing = "; ".join(t.reason for t in tests if t.verdict != REPRODUCED)
    return Evidence(verdict, summary, {t.what or f"part {i}": t.stats for i, t in enumerate(tests)}, "", failing)


@dataclass
class Claim:
    id: str
    experiment: str
    paper: str
    statement: str        # the paper's claim, as tested here
    direction: str        # the paper's reported direction
    rule: str             # which per-seed number is tested, in words
    measured: str         # the numbers, human readable, with spread over seeds
    test: Evidence
    values: dict = field(default_factory=dict)  # raw numbers (per seed) behind the verdict
    diagnosis: str = ""   # the experiment's explanation from the numbers, shown when not reproduced

    @property
    def verdict(self) -> str:
        return self.test.verdict

    @property
    def reproduced(self) -> bool:
        return self.test.verdict == REPRODUCED

    @property
    def reason(self) -> str:
        if self.reproduced:
            return ""
        return "; ".join(p for p in (self.test.reason, self.diagnosis) if p)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("test")
        return d | {"verdict": self.verdict, "evidence": self.test.summary, "reason": self.reason,
                    "stats": self.test.stats}


def caption(claims: Sequence[Claim]) -> str:
    """The verdict sentence appended to a figure's (neutral) caption: what this run found, from the claims."""
    return " ".join(f"Here: {c.statement.rstrip('.')} — {c.verdict.upper()} ({c.test.summary})." for c in claims)


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]


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
