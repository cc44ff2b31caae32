"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import gao

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05

# -------------------------------------------------------------------------------------------- Gao, synthetic
def _gao_seed(n_amounts: int, overopt: bool) -> dict:
    d = np.linspace(0, 2, 15)
    out = {}
    for kind, form in (("bon", lambda d, a, b: d * (a - b * d)), ("rl", lambda d, a, b: d * (a - b * np.log(
            np.where(d > 0, d, 1.0))))):
        beta = (0.6 if kind == "bon" else 1.5) if overopt else 0.0  # peaks at d = 0.83 / 0.72
        gold = np.stack([form(d, 1.0 + 0.2 * j, beta / (1 + j)) for j in range(n_amounts)])
        proxy = np.stack([d * (1.2 + 0.1 * j) for j in range(n_amounts)])
        out[kind] = {"d": np.stack([d] * n_amounts), "gold": gold, "proxy": proxy}
        fit = gao.fit_bon if kind == "bon" else gao.fit_rl
        out[f"{kind}_fits"] = [fit(d, gold[j]).as_dict() for j in range(n_amounts)]
    return out


@pytest.mark.parametrize("overopt", [True, False])
def test_gao_rules(overopt):
    cfg = gao.GaoConfig()
    per_seed = [_gao_seed(len(cfg.n_pairs), overopt) for _ in range(SEEDS)]
    claims = {c.id: c for c in gao.summarize(cfg, per_seed).claims}
    assert claims["gao-overopt-bon"].reproduced is overopt
    assert claims["gao-overopt-rl"].reproduced is overopt
    assert claims["gao-forms"].reproduced  # the synthetic curves are the forms themselves: R² = 1
    assert claims["gao-data-bon"].reproduced  # peak grows with the amount index in both cases


def test_gao_data_rule_fails_when_more_data_is_worse():
    cfg = gao.GaoConfig()
    per_seed = [_gao_seed(len(cfg.n_pairs), True) for _ in range(SEEDS)]
    for o in per_seed:
        o["bon"]["gold"] = o["bon"]["gold"][::-1].copy()
    claims = {c.id: c for c in gao.summarize(cfg, per_seed).claims}
    assert not claims["gao-data-bon"].reproduced
