"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import coste

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05

# ------------------------------------------------------------------------------------ Coste / PAR, synthetic
def _coste_seed(cfg, single: float, agg: dict[str, float]) -> dict:
    K = cfg.members
    final = np.array([single] * K + [agg[a] for a in coste.AGGREGATES])
    return {"bon_gold": np.stack([0 * final, final]), "rl_gold": np.stack([0 * final, final])}


@pytest.mark.parametrize("agg,cons,mean_ok", [({"mean": 0.6, "wco": 0.7, "uwo": 0.8}, True, True),
                                              ({"mean": 0.4, "wco": 0.7, "uwo": 0.3}, False, False),
                                              ({"mean": 0.6, "wco": 0.4, "uwo": 0.8}, False, True)])
def test_coste_rules(agg, cons, mean_ok):
    cfg = coste.CosteConfig()
    per_seed = [_coste_seed(cfg, 0.5 + 0.01 * s, agg) for s in range(SEEDS)]
    claims = {c.id: c for c in coste.summarize(cfg, per_seed).claims}
    assert claims["coste-conservative-bon"].reproduced is cons
    assert claims["coste-conservative-rl"].reproduced is cons
    assert claims["coste-mean"].reproduced is mean_ok
