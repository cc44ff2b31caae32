"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import par

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05

@pytest.mark.parametrize("par_final,expected", [(0.8, True), (-3.0, False)])
def test_par_rule(par_final, expected):
    cfg = par.PARConfig()
    gold = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.6], [-2.0, 0.0, par_final]])  # [T, arms]
    per_seed = [{"steps": [0, 1, 2], "gold": gold, "d": np.ones_like(gold), "names": list(par.ARMS)}] * SEEDS
    claims = {c.id: c for c in par.summarize(cfg, per_seed).claims}
    assert claims["par-high-kl"].reproduced is expected
