"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

import numpy as np
import pytest

from rewardlab.lab.experiments import razin

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05

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
    per_seed = [_razin_seed(cfg, rng, gain_from, 0.0, {"pi0": -0.1, "B": 0.1}) for _ in range(SEEDS)]
    claims = {c.id: c for c in razin.summarize(cfg, per_seed).claims}
    assert claims["razin-rv-vs-acc"].reproduced is expected


@pytest.mark.parametrize("lowvar_gain,expected", [(0.0, True), (5.0, False)])
def test_razin_lowvar_rule(lowvar_gain, expected):
    cfg = razin.RazinConfig()
    rng = np.random.default_rng(1)
    per_seed = [_razin_seed(cfg, rng, "rv", lowvar_gain, {"pi0": -0.1, "B": 0.1}) for _ in range(SEEDS)]
    claims = {c.id: c for c in razin.summarize(cfg, per_seed).claims}
    assert claims["razin-lowvar-slow"].reproduced is expected


@pytest.mark.parametrize("th,expected", [({"pi0": -0.1, "B": 0.1}, True), ({"pi0": -0.1, "B": -0.1}, False),
                                         ({"pi0": 0.1, "B": 0.1}, False)])
def test_razin_policy_dependence_rule(th, expected):
    cfg = razin.RazinConfig()
    rng = np.random.default_rng(2)
    per_seed = [_razin_seed(cfg, rng, "rv", 0.0, th) for _ in range(SEEDS)]
    claims = {c.id: c for c in razin.summarize(cfg, per_seed).claims}
    assert claims["razin-policy-dependent"].reproduced is expected
