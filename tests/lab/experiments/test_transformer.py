"""Verdict rules of the transformer level: synthetic per-seed numbers in, expected verdicts and reasons out."""

import math

import numpy as np
import pytest

from rewardlab.lab.experiments import transformer
from rewardlab.lab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

SEEDS = 5  # the sign test needs 5 seeds (5/5) for p < 0.05
CFG = transformer.TransformerConfig()
NAMES = [f"{n} pairs" for n in CFG.n_pairs]
LOW, GOLD = "perfect, low-RV", "gold r*"


def _bon(j: int, data_sign: int, overopt: bool, jitter: float) -> list[dict]:
    """Best-of-n rows of proxy ``j``: gold = d·(a_j − b·d), a_j rising (data_sign > 0) or falling with j; with
    ``overopt`` the least-data proxy (j = 0) peaks at d = 1 and ends near 0."""
    rows = []
    for n in [2**i for i in range(int(math.log2(CFG.bon_samples)) + 1)]:
        kl = math.log(n) - (n - 1) / n
        d = math.sqrt(kl)
        a = 1.0 + 0.3 * j * data_sign
        b = a / 2 if overopt and j == 0 else 0.0
        rows.append({"n": n, "kl": kl, "sqrt_kl": d, "proxy": 1.5 * d, "gold": d * (a - b * d) + jitter,
                     "gold_se": 0.05})
    return rows


def _seed(i: int, razin_sign: int = 1, data_sign: int = 1, overopt: bool = True, early_kl: float = 0.2,
          low_kl_ratio: float = 0.2) -> dict:
    jitter = 0.01 * i
    steps = list(range(0, CFG.rloo_steps + 1, CFG.eval_every))
    t = np.array(steps, dtype=float) / CFG.eval_every  # evaluations: 0, 1, 2, ...
    fast, slow = 0.3 + jitter, 0.1 + jitter / 2  # gold gain per evaluation
    gain = {NAMES[0]: fast if razin_sign > 0 else slow, LOW: slow if razin_sign > 0 else fast, GOLD: 0.4}
    kl = {NAMES[0]: early_kl, LOW: early_kl * low_kl_ratio, GOLD: early_kl}
    rl = {n: {"steps": steps, "gold": list(gain[n] * t), "kl": list(kl[n] * t**2)} for n in (GOLD, LOW, NAMES[0])}
    metrics = {n: {"rv": 0.8, "on_acc": 0.7 + 0.1 * j * data_sign} for j, n in enumerate(NAMES)}
    metrics[LOW] = {"rv": 0.15, "on_acc": 1.0}
    metrics[GOLD] = {"rv": 0.7, "on_acc": 1.0}
    return {"metrics": metrics, "bon": {n: _bon(j, data_sign, overopt, jitter) for j, n in enumerate(NAMES)},
            "rl": rl, "proxy_names": NAMES, "mean_length": 6.0}


def claims_of(per_seed: list[dict]) -> dict:
    return {c.id: c for c in transformer.summarize(CFG, per_seed).claims}


def test_claims_reproduce_when_the_numbers_say_so():
    claims = claims_of([_seed(i) for i in range(SEEDS)])
    assert {k: c.verdict for k, c in claims.items()} == {
        "tf-razin-lowvar": REPRODUCED, "tf-gao-data": REPRODUCED, "tf-gao-overopt": REPRODUCED}
    razin = claims["tf-razin-lowvar"]
    assert razin.values["early_step"] == CFG.eval_every
    assert razin.values["early_kl"][NAMES[0]] == pytest.approx([0.2] * SEEDS)  # KL at the first evaluation
    assert f"KL(π‖π₀) after {CFG.eval_every} steps 0.20" in razin.measured
    assert all(not c.reason for c in claims.values())  # reasons (and diagnoses) only show when not reproduced


def test_claims_are_not_reproduced_when_the_numbers_contradict_them():
    claims = claims_of([_seed(i, razin_sign=-1, data_sign=-1, overopt=False) for i in range(SEEDS)])
    assert {k: c.verdict for k, c in claims.items()} == {
        "tf-razin-lowvar": NOT_REPRODUCED, "tf-gao-data": NOT_REPRODUCED, "tf-gao-overopt": NOT_REPRODUCED}
    # the reasons say why, from the numbers
    assert "gained less gold" in claims["tf-razin-lowvar"].reason
    assert "more pairs do not give more accurate proxies" in claims["tf-gao-data"].reason
    assert (f"highest at the largest n = {CFG.bon_samples} in 5/5 seeds" in claims["tf-gao-overopt"].reason)


def test_mixed_seeds_are_inconclusive():
    per_seed = [_seed(i, razin_sign=1 if i < 3 else -1, overopt=i < 3) for i in range(SEEDS)]
    claims = claims_of(per_seed)
    assert claims["tf-razin-lowvar"].verdict == INCONCLUSIVE
    assert claims["tf-gao-overopt"].verdict == INCONCLUSIVE
    assert claims["tf-gao-data"].verdict == REPRODUCED  # more data still gives more gold in every seed


def test_razin_diagnosis_names_a_budget_that_is_not_early_and_a_low_rv_rm_that_was_not_slow():
    bad = claims_of([_seed(i, razin_sign=-1, early_kl=2.3, low_kl_ratio=1.0) for i in range(SEEDS)])
    diagnosis = bad["tf-razin-lowvar"].diagnosis
    assert "KL at the early budget is 2.30 nats (> 1): the budget is not early" in diagnosis
    assert "its low RV did not slow RLOO down" in diagnosis
    good = claims_of([_seed(i, razin_sign=-1) for i in range(SEEDS)])["tf-razin-lowvar"].diagnosis
    assert "not early" not in good and "did not slow" not in good
    assert good.endswith("(r*: +0.40)")  # the facts are always there


def test_overopt_diagnosis_gives_peaks_and_drops():
    d = claims_of([_seed(i) for i in range(SEEDS)])["tf-gao-overopt"].diagnosis
    # the least-data proxy's curve g = d(1 − d/2), d = √(log n − (n−1)/n): n = 4 → d 0.80, g 0.480; n = 8 → d 1.10,
    # g 0.495 (the peak); n = 128 → d 1.965, g 0.034: it ends (0.495 − 0.034)/0.495 = 93% of its gain below the peak
    assert "gold peaks at n = 8, 8, 8, 8, 8 (per seed) and ends 93%, 93%, 93%, 93%, 93%" in d
    assert "largest n" not in d
