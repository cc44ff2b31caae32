"""The Secrets-of-RLHF-II denoising experiment: its batched trainer against the lab's one-model trainer, weights
against duplicated pairs, the methods' training sets against the rows `data denoise` writes, the exact label flips,
and a small run end to end."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from rewardlab.lab.experiments.denoise import (
    DenoiseConfig,
    TrainingSet,
    flip_labels,
    method_set,
    run,
    train_batched,
)
from rewardlab.lab.proxies import train_feature_rm
from rewardlab.lab.world import Pairs, WorldConfig, make_world, sample_pairs
from rewardlab.rewards.strength import plan, written_rows

SMALL = WorldConfig(n_prompts=16, n_candidates=8)


@pytest.fixture(scope="module")
def world():
    return make_world(SMALL, 0)


def _pairs(world, n, seed):
    return sample_pairs(world, world.policies["pi0"], n, torch.Generator().manual_seed(seed))


def test_batched_training_is_the_lab_trainer_per_model(world):
    """Two sets of different sizes (the shorter padded with weight 0), unit weights, no margin: each model is what
    proxies.train_feature_rm (one FeatureRM, AdamW on the mean BT loss) trains from the same seed."""
    cfg = DenoiseConfig(world=SMALL, steps=40)
    a, b = _pairs(world, 60, 1), _pairs(world, 45, 2)
    sets = [TrainingSet(p, torch.ones(len(p)), torch.zeros(len(p))) for p in (a, b)]
    tables = train_batched(world, sets, [3, 4], cfg)
    for table, pairs, seed in zip(tables, (a, b), (3, 4)):
        ref = train_feature_rm(world, pairs, cfg.hidden, seed, steps=cfg.steps, lr=cfg.lr,
                               weight_decay=cfg.weight_decay)
        assert torch.allclose(table, ref, atol=1e-4)


def test_a_weight_of_two_is_the_pair_twice(world):
    cfg = DenoiseConfig(world=SMALL, steps=40)
    p = _pairs(world, 30, 5)
    w = torch.ones(30)
    w[:10] = 2.0
    idx = torch.cat([torch.arange(30), torch.arange(10)])
    twice = Pairs(p.prompt[idx], p.chosen[idx], p.rejected[idx])
    margin = torch.linspace(-1, 1, 30)
    tables = train_batched(world, [TrainingSet(p, w, margin), TrainingSet(twice, torch.ones(40), margin[idx])],
                           [7, 7], cfg)
    assert torch.allclose(tables[0], tables[1], atol=1e-4)


def test_flip_labels_flips_exactly_those():
    p = Pairs(torch.tensor([0, 1, 2]), torch.tensor([4, 5, 6]), torch.tensor([7, 8, 9]))
    f = flip_labels(p, torch.tensor([1]))
    assert f.chosen.tolist() == [4, 8, 6] and f.rejected.tolist() == [7, 5, 9] and f.prompt.tolist() == [0, 1, 2]


@pytest.mark.parametrize("method", ["flip", "drop", "smooth+margin", "flip+margin"])
def test_method_sets_are_the_rows_data_denoise_writes(method):
    p = Pairs(torch.tensor([0, 1, 2]), torch.tensor([4, 5, 6]), torch.tensor([7, 8, 9]))
    mean, std, flagged = np.array([1.0, -0.5, 0.2]), np.array([0.1, 0.2, 0.3]), np.array([False, True, False])
    s = method_set(p, mean, std, flagged, method, smoothing=0.2)
    action, margin = {"flip": ("flip", None), "drop": ("drop", None), "smooth+margin": ("smooth", 1.0),
                      "flip+margin": ("flip", 1.0)}[method]
    raw = [{"prompt": int(x), "chosen": int(c), "rejected": int(r)} for x, c, r in zip(p.prompt, p.chosen, p.rejected)]
    rows = written_rows(raw, plan(mean, std, flagged, action, 0.2), margin)
    assert s.pairs.prompt.tolist() == [r["prompt"] for r in rows]
    assert s.pairs.chosen.tolist() == [r["chosen"] for r in rows]
    assert s.pairs.rejected.tolist() == [r["rejected"] for r in rows]
    assert s.weight.tolist() == pytest.approx([r.get("weight", 1.0) for r in rows])
    assert s.margin.tolist() == pytest.approx([r.get("margin", 0.0) for r in rows])


def test_a_small_run_end_to_end():
    cfg = replace(DenoiseConfig(world=SMALL), n_pairs=200, members=3, retrains=1, steps=60, n_eval=500)
    res = run(cfg, [0])
    at = res.data["per_seed"][0]["levels"]
    for lv in cfg.noise_levels:
        assert at[lv]["flipped_by_noise"] == pytest.approx(lv)            # exactly ⌊ε·n⌋ labels flipped
        assert 0 < at[lv]["flagged"] < 1 and 0 <= at[lv]["precision"] <= 1
        assert all(0 <= at[lv][m] <= 1 for m in ("noisy", "flip", "drop", "smooth+margin", "ensemble"))
    assert [c.id for c in res.claims] == ["denoise-flip-0.25", "denoise-flip-0.4"]
    assert any("clean labels" in line for line in res.lines)


def test_flipping_recovers_part_of_the_accuracy_lost_to_25_percent_noise():
    """The measured effect, asserted only as widely as it held: over 20 seeds (default config) flip − noisy was
    > 0 in 19 (mean +0.035 gold accuracy, noise cost 0.127); here the mean over seeds 0–2 must be > 0, each seed's
    noise cost > 0.03 (it was ≥ 0.063 in all 20), and flipping must not beat clean labels on average. At 40% noise
    the gain was not consistent (14 of 20 seeds), so nothing is asserted there."""
    res = run(DenoiseConfig(noise_levels=(0.25,)), [0, 1, 2])
    at = [o["levels"][0.25] for o in res.data["per_seed"]]
    gain = [a["flip"] - a["noisy"] for a in at]
    cost = [o["clean"] - a["noisy"] for o, a in zip(res.data["per_seed"], at)]
    assert np.mean(gain) > 0
    assert min(cost) > 0.03
    assert np.mean([a["flip"] for a in at]) < np.mean(res.data["clean"])
