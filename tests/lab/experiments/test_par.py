"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import par
from rewardlab.lab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Evidence

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05


def _claims(raw_final: float, par_final: float, scaled_final: float = 0.0) -> dict:
    per_seed = []
    for s in range(SEEDS):
        gold = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.6],
                         [raw_final - 0.01 * s, scaled_final - 0.01 * s, par_final + 0.01 * s]])  # [T, arms]
        reward = np.array([[0.0, 0.0, 0.5], [1.0, 0.5, 0.7], [2.0, 0.6, 0.8]])
        per_seed.append({"steps": [0, 1, 2], "gold": gold, "d": np.ones_like(gold), "names": list(par.ARMS),
                         "reward": reward})
    return {c.id: c for c in par.summarize(par.PARConfig(), per_seed).claims}


@pytest.mark.parametrize("raw,par_final,high_kl,holds", [
    (-2.0, 0.8, REPRODUCED, REPRODUCED),          # raw collapses, PAR holds: the paper's picture
    (-2.0, -3.0, NOT_REPRODUCED, NOT_REPRODUCED),  # PAR ends below raw (and below π₀)
    (-2.0, -0.5, REPRODUCED, NOT_REPRODUCED),      # PAR mitigates but still ends below π₀
    (0.4, 0.8, INCONCLUSIVE, REPRODUCED)])         # raw never collapses: the premise is missing
def test_par_rules(raw, par_final, high_kl, holds):
    claims = _claims(raw, par_final)
    assert claims["par-high-kl"].verdict == high_kl
    assert claims["par-holds"].verdict == holds
    if high_kl == INCONCLUSIVE:
        assert "raw collapsed in 0/5 seeds" in claims["par-high-kl"].reason
    if holds == NOT_REPRODUCED:
        assert "PAR ended below π₀ in 5/5 seeds" in claims["par-holds"].reason
        assert "rose from 0.50" in claims["par-holds"].reason


@pytest.mark.parametrize("scaled,verdict", [(-1.0, REPRODUCED), (2.0, NOT_REPRODUCED)])
def test_par_shape_rule(scaled, verdict):
    claims = _claims(-2.0, 0.8, scaled)
    assert claims["par-shape"].verdict == verdict


def test_given_needs_the_premise():
    yes, no, maybe = (Evidence(v, v) for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE))
    assert par.given(yes, yes).verdict == REPRODUCED
    assert par.given(no, yes).verdict == INCONCLUSIVE     # premise contradicted: the effect is untested
    assert par.given(maybe, yes).verdict == INCONCLUSIVE
    assert par.given(yes, no).verdict == NOT_REPRODUCED
    assert par.given(no, no).verdict == NOT_REPRODUCED    # the effect itself is contradicted
    assert par.given(yes, maybe).verdict == INCONCLUSIVE
