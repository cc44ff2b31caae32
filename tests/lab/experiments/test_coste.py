"""Verdict rules of the experiment: synthetic per-seed numbers in, expected verdicts out — in both directions."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from rewardlab.lab.experiments import coste
from rewardlab.lab.proxies import ProxySpec, pairs_for, train_proxy
from rewardlab.lab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from rewardlab.lab.world import WorldConfig, make_world

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05
LEVELS = [0.0, 0.25, 0.4]


def _final(cfg, single: float, agg: dict[str, float]) -> np.ndarray:
    return np.array([single] * cfg.members + [agg[a] for a in coste.AGGREGATES])


def _coste_seed(cfg, single: float, agg: dict[str, float], benefit: list[float] | None = None) -> dict:
    """Final gold per table (K members, then mean/WCO/UWO); in the sweep every ensemble beats the single RM by
    ``benefit[i]`` at noise level i (default: the same outcome at every level)."""
    final = _final(cfg, single, agg)
    sweep = [final if benefit is None else _final(cfg, single, dict.fromkeys(coste.AGGREGATES, single + b))
             for b in (benefit or LEVELS)]
    return {"bon_gold": np.stack([0 * final, final]), "rl_gold": np.stack([0 * final, final]),
            "member_spread": 0.5, "sweep": {"levels": LEVELS, "bon": sweep, "rl": sweep}}


@pytest.mark.parametrize("agg,cons,mean_ok,vs_mean", [
    ({"mean": 0.6, "wco": 0.7, "uwo": 0.8}, REPRODUCED, True, REPRODUCED),
    ({"mean": 0.4, "wco": 0.7, "uwo": 0.3}, NOT_REPRODUCED, False, NOT_REPRODUCED),   # UWO below single and mean
    ({"mean": 0.6, "wco": 0.4, "uwo": 0.8}, NOT_REPRODUCED, True, NOT_REPRODUCED)])   # WCO below single and mean
def test_coste_rules(agg, cons, mean_ok, vs_mean):
    cfg = coste.CosteConfig()
    per_seed = [_coste_seed(cfg, 0.5 + 0.01 * s, agg) for s in range(SEEDS)]
    claims = {c.id: c for c in coste.summarize(cfg, per_seed).claims}
    for kind in ("bon", "rl"):
        assert claims[f"coste-conservative-{kind}"].verdict == cons
        assert claims[f"coste-vs-mean-{kind}"].verdict == vs_mean
    assert claims["coste-mean"].reproduced is mean_ok


def test_coste_vs_mean_diagnosis_counts_seeds():
    cfg = coste.CosteConfig()
    per_seed = [_coste_seed(cfg, 0.5, {"mean": 0.6 + 0.01 * s, "wco": 0.4, "uwo": 0.6}) for s in range(SEEDS)]
    claim = next(c for c in coste.summarize(cfg, per_seed).claims if c.id == "coste-vs-mean-bon")
    assert claim.verdict == NOT_REPRODUCED
    assert "WCO is below the mean ensemble in 5/5 seeds" in claim.reason
    assert "λ·var is ≈ 0.125 σ" in claim.reason  # 0.5 · 0.5²


@pytest.mark.parametrize("benefit,verdict", [([0.1, 0.35, 0.5], REPRODUCED), ([0.5, 0.3, 0.1], NOT_REPRODUCED),
                                             ([0.3, 0.3, 0.3], INCONCLUSIVE)])
def test_coste_noise_rule(benefit, verdict):
    cfg = coste.CosteConfig()
    per_seed = [_coste_seed(cfg, 0.5, {"mean": 0.6, "wco": 0.7, "uwo": 0.8},
                            [b + 0.01 * s for b in benefit]) for s in range(SEEDS)]
    claims = {c.id: c for c in coste.summarize(cfg, per_seed).claims}
    for kind in ("bon", "rl"):
        assert claims[f"coste-noise-{kind}"].verdict == verdict
    if verdict == REPRODUCED:  # slope of (0.1, 0.35, 0.5) on (0, 0.25, 0.4) is exactly 1.0 per unit noise
        assert claims["coste-noise-bon"].values["slopes"]["wco"] == pytest.approx([0.1] * SEEDS)


def test_coste_levels_reuse_the_main_noise():
    assert coste.CosteConfig().levels() == LEVELS
    assert coste.CosteConfig(noise_levels=(0.0, 0.4)).levels() == LEVELS  # world.label_noise = 0.25 joins the sweep


@pytest.mark.parametrize("hidden", [16, 0])
def test_train_members_equals_separate_training(hidden):
    """The batched members are train_proxy's members: same bootstrap, init and AdamW steps, up to float32 rounding.

    Whole tables are compared: both are centred per prompt, which removes the one part the BT loss does not
    identify (with hidden=0 the prompt-feature weights get a gradient of pure rounding noise that AdamW turns into
    full-size steps, so raw per-prompt offsets differ by summation order, i.e. by machine)."""
    world = make_world(WorldConfig(n_prompts=16, n_candidates=8), 3)
    spec = ProxySpec("member", 200, 1.0, hidden, seed=3000, bootstrap=True)
    pairs = pairs_for(world, spec, torch.Generator().manual_seed(3007), noise=0.25)
    ref = torch.stack([train_proxy(world, replace(spec, seed=spec.seed + j + 1), pairs, steps=10) for j in range(3)])
    other = pairs_for(world, spec, torch.Generator().manual_seed(3007), noise=0.0)  # same pairs, relabelled
    both = coste.train_members(world, spec, [other, pairs], 3, steps=10)
    got = both[3:]                                                                    # set-major: the second set
    assert (both[:3] - ref).abs().max() > 0.01                                        # the first set is another
    assert (got - ref).abs().max() < 1e-4 * ref.abs().max()
    assert got.mean(-1).abs().max() < 1e-9 and ref.mean(-1).abs().max() < 1e-9   # centred per prompt
    assert (ref[0] - ref[1]).abs().max() > 0.01  # members differ (bootstrap + init), so the match is not trivial
