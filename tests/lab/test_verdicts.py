"""Verdict rules: synthetic numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import coste, gao, par, razin
from rewardlab.lab.verdicts import (
    consistently_negative,
    consistently_positive,
    fmt,
    peaks_then_falls,
)


def test_consistently_positive_needs_mean_and_agreement():
    assert consistently_positive([0.1, 0.2, 0.3])
    assert not consistently_positive([0.5, 0.4, -0.1])          # 2/3 < 75% agree, although the mean is > 0
    assert consistently_positive([0.5, 0.4, 0.3, -0.1])         # 3/4 agree
    assert not consistently_positive([-0.1, -0.2, 0.05])
    assert not consistently_positive([])
    assert consistently_negative([-0.1, -0.3]) and not consistently_negative([0.1, -0.3])
    assert consistently_positive([0.1, float("nan"), 0.2])      # NaNs are ignored


def test_other_rules():
    assert peaks_then_falls([0, 1, 2, 1.5])
    assert not peaks_then_falls([0, 1, 2, 3])                   # still rising
    assert not peaks_then_falls([0, 1, 2, 1.95])                # drop 0.05 < 10% of the 2.0 gain
    assert not peaks_then_falls([0, -1, -2])                    # never gains
    assert fmt([1.0, 2.0, 3.0]) == "2.00 ± 1.00 (n=3)" and fmt([]) == "n/a" and fmt([0.5]) == "0.50"


# ------------------------------------------------------------------------------------------ Razin, synthetic
def _razin_seed(cfg, rng, gain_from: str, lowvar_gain: float, th_gain: dict[str, float]) -> dict:
    specs = cfg.proxy_specs(0)
    n = len(specs)
    names = [s.name for s in specs] + list(razin.CONSTRUCTED)
    R = len(names)
    out = {"names": names, "n_trained": n, "metrics": {}, "gain": {}, "curves": {}, "per_prompt_gain": {}}
    for pol in razin.POLICIES:
        met = {m: rng.uniform(0.2, 0.9, R) for m in razin.METRICS}
        met["rv_per_prompt"] = rng.uniform(0, 1, (R, 4))
        out["metrics"][pol] = met
        gain = np.array(met[gain_from]) + 0.01 * rng.standard_normal(R)
        gain[names.index("perfect, low-RV")] = lowvar_gain
        gain[names.index("gold r*")] = 0.5
        gain[names.index("perfect, threshold")] = 0.5 + th_gain[pol]
        for method in razin.METHODS:
            for lr in cfg.lrs:
                key = f"{pol}|{method}|{lr:g}"
                out["curves"][key] = {"steps": [0, cfg.early, cfg.late], "gain": np.stack([0 * gain, gain, gain])}
                for b in (cfg.early, cfg.late):
                    out["gain"][f"{key}|{b}"] = gain
                    out["per_prompt_gain"][f"{key}|{b}"] = np.repeat(gain[:, None], 4, 1)
    return out


@pytest.mark.parametrize("gain_from,expected", [("rv", True), ("on_acc", False), ("off_acc", False)])
def test_razin_rv_vs_accuracy_rule(gain_from, expected):
    cfg = razin.RazinConfig()
    rng = np.random.default_rng(0)
    per_seed = [_razin_seed(cfg, rng, gain_from, 0.0, {"pi0": -0.1, "B": 0.1}) for _ in range(3)]
    claims = {c.id: c for c in razin.summarize(cfg, per_seed).claims}
    assert claims["razin-rv-vs-acc"].reproduced is expected


@pytest.mark.parametrize("lowvar_gain,expected", [(0.0, True), (5.0, False)])
def test_razin_lowvar_rule(lowvar_gain, expected):
    cfg = razin.RazinConfig()
    rng = np.random.default_rng(1)
    per_seed = [_razin_seed(cfg, rng, "rv", lowvar_gain, {"pi0": -0.1, "B": 0.1}) for _ in range(3)]
    claims = {c.id: c for c in razin.summarize(cfg, per_seed).claims}
    assert claims["razin-lowvar-slow"].reproduced is expected


@pytest.mark.parametrize("th,expected", [({"pi0": -0.1, "B": 0.1}, True), ({"pi0": -0.1, "B": -0.1}, False),
                                         ({"pi0": 0.1, "B": 0.1}, False)])
def test_razin_policy_dependence_rule(th, expected):
    cfg = razin.RazinConfig()
    rng = np.random.default_rng(2)
    per_seed = [_razin_seed(cfg, rng, "rv", 0.0, th) for _ in range(3)]
    claims = {c.id: c for c in razin.summarize(cfg, per_seed).claims}
    assert claims["razin-policy-dependent"].reproduced is expected


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
    per_seed = [_gao_seed(len(cfg.n_pairs), overopt) for _ in range(3)]
    claims = {c.id: c for c in gao.summarize(cfg, per_seed).claims}
    assert claims["gao-overopt-bon"].reproduced is overopt
    assert claims["gao-overopt-rl"].reproduced is overopt
    assert claims["gao-forms"].reproduced  # the synthetic curves are the forms themselves: R² = 1
    assert claims["gao-data-bon"].reproduced  # peak grows with the amount index in both cases


def test_gao_data_rule_fails_when_more_data_is_worse():
    cfg = gao.GaoConfig()
    per_seed = [_gao_seed(len(cfg.n_pairs), True) for _ in range(3)]
    for o in per_seed:
        o["bon"]["gold"] = o["bon"]["gold"][::-1].copy()
    claims = {c.id: c for c in gao.summarize(cfg, per_seed).claims}
    assert not claims["gao-data-bon"].reproduced


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
    per_seed = [_coste_seed(cfg, 0.5 + 0.01 * s, agg) for s in range(3)]
    claims = {c.id: c for c in coste.summarize(cfg, per_seed).claims}
    assert claims["coste-conservative-bon"].reproduced is cons
    assert claims["coste-conservative-rl"].reproduced is cons
    assert claims["coste-mean"].reproduced is mean_ok


@pytest.mark.parametrize("par_final,expected", [(0.8, True), (-3.0, False)])
def test_par_rule(par_final, expected):
    cfg = par.PARConfig()
    gold = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.6], [-2.0, 0.0, par_final]])  # [T, arms]
    per_seed = [{"steps": [0, 1, 2], "gold": gold, "d": np.ones_like(gold), "names": list(par.ARMS)}] * 3
    claims = {c.id: c for c in par.summarize(cfg, per_seed).claims}
    assert claims["par-high-kl"].reproduced is expected
