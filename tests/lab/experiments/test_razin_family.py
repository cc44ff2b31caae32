"""The independent family of razin-rv-early: accuracy is set by the noise knob only, RV by the steepness and offset
knobs (a family whose RV and accuracy co-vary could not separate the two predictors)."""

from dataclasses import replace

import numpy as np
import torch

from rewardlab.evaluate.metrics import spearman
from rewardlab.lab.common import teacher_metrics
from rewardlab.lab.experiments.razin_family import FamilyConfig, gap, independent_family, run_family, seed_record
from rewardlab.lab.world import WorldConfig, make_world, neutral_pairs

CFG = FamilyConfig(n_prompts=60, n_candidates=20, size=16)


def _family(cfg: FamilyConfig, seed: int = 0):
    world = make_world(replace(WorldConfig(), n_prompts=cfg.n_prompts, n_candidates=cfg.n_candidates), seed)
    g = torch.Generator().manual_seed(seed)
    logits = cfg.concentration * torch.randn(cfg.n_prompts, cfg.n_candidates, generator=g, dtype=torch.float64)
    tables, knobs = independent_family(world.gold, logits, cfg, g)
    met = teacher_metrics(world, tables, logits, neutral_pairs(world, 500, g), 16, g)
    return world, tables, knobs, met


def test_without_noise_every_member_is_perfectly_accurate_yet_rv_spans_a_wide_range():
    world, tables, knobs, met = _family(replace(CFG, noise_max=0.0))
    assert np.all(met["on_acc"] == 1.0) and np.all(met["off_acc"] == 1.0)     # steepness and offsets keep the order
    order = tables.argsort(-1)
    assert torch.equal(order, world.gold.argsort(-1).expand_as(order))
    assert met["rv"].max() > 3 * met["rv"].min()
    assert spearman(knobs[:, 1], met["rv"]) > 0.7                              # steeper where π writes -> more RV


def test_noise_sets_accuracy_and_offsets_lower_rv():
    _, _, knobs, met = _family(CFG)
    assert spearman(knobs[:, 0], met["on_acc"]) < -0.8 and spearman(knobs[:, 0], met["off_acc"]) < -0.8
    _, _, _, no_offsets = _family(replace(CFG, noise_max=0.0, offset_max=0.0))
    _, _, _, offsets = _family(replace(CFG, noise_max=0.0, offset_max=3.0))
    assert offsets["rv"].mean() < no_offsets["rv"].mean()


def test_run_family_measures_rho_at_both_budgets():
    o = run_family(replace(CFG, size=6, early=3, late=6, profile=(1, 5, 25), eval_pairs=50), WorldConfig(), 1)
    assert set(o["rho"]) == {"1", "3", "5", "6"}  # profile budgets past the late one are not run
    assert all(np.isfinite(v) for r in o["rho"].values() for v in r.values())
    assert np.isfinite(gap(o, 3)) and o["gain"]["3"].shape == (6,)


def test_gap_is_rv_minus_the_better_accuracy():
    met = {"rv": np.arange(5.0), "on_acc": np.array([0, 2, 1, 4, 3.0]), "off_acc": np.array([4, 3, 2, 1, 0.0])}
    o = seed_record(0, np.zeros((5, 3)), met, {1: np.arange(5.0)})
    assert gap(o, 1) == 1.0 - 0.8                                             # ρ(RV) = 1, ρ(on) = 0.8, ρ(off) = −1
