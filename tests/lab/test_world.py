"""The tabular world's pieces: gold, labels, policies, constructed rewards."""

import math
from dataclasses import replace

import pytest
import torch

from rewardlab.evaluate.metrics import on_policy_accuracy, pairwise_accuracy, reward_variance
from rewardlab.lab.world import (
    GoldParams,
    TabularWorld,
    WorldConfig,
    band_reward,
    gold_reward,
    kl,
    length_term,
    low_variance_reward,
    make_world,
    moments,
    neutral_pairs,
    preference_prob,
    sample_pairs,
    sample_responses,
    standardize,
    threshold_reward,
)

SMALL = replace(WorldConfig(), n_prompts=16, n_candidates=12)


def test_world_is_a_function_of_its_seed():
    a, b, c = make_world(SMALL, 3), make_world(SMALL, 3), make_world(SMALL, 4)
    assert torch.equal(a.gold, b.gold) and torch.equal(a.policies["pi0"], b.policies["pi0"])
    assert not torch.equal(a.gold, c.gold)
    assert a.gold.shape == (16, 12) and a.inputs().shape == (16, 12, SMALL.n_features + SMALL.n_prompt_features)


def test_length_term_rises_then_falls_with_its_maximum_at_the_optimum():
    ell = torch.tensor([0.0, 1.0, 2.5, 4.0, 5.0], dtype=torch.float64)
    g = length_term(ell, weight=2.0, optimum=2.5)
    # by hand: 2·(ℓ − ℓ²/5) = 0, 1.6, 2.5, 1.6, 0
    assert torch.allclose(g, torch.tensor([0.0, 1.6, 2.5, 1.6, 0.0], dtype=torch.float64))


def test_gold_reward_by_hand():
    # D = 3 (length, φ1, φ2), Dp = 1; w = [1, −1], A = 0 (no tanh term), u = v = [1], σ_b = 0.5, σ_s = 0.1.
    cfg = replace(WorldConfig(), n_features=3, n_prompt_features=1, prompt_offset_std=0.5, prompt_scale_std=0.1,
                  length_weight=2.0, length_optimum=2.5)
    f64 = torch.float64
    params = GoldParams(torch.tensor([1.0, -1.0], dtype=f64), torch.zeros(2, 2, dtype=f64),
                        torch.tensor([1.0], dtype=f64), torch.tensor([1.0], dtype=f64))
    feats = torch.tensor([[[1.0, 0.3, 0.1], [5.0, 0.3, 0.1]]], dtype=f64)
    psi = torch.tensor([[2.0]], dtype=f64)
    r = gold_reward(feats, psi, params, cfg)
    s = math.exp(0.2)
    # b = 0.5·2 = 1; response parts: 0.3 − 0.1 + 2(1 − 1/5) = 1.8 and 0.2 + 2(5 − 25/5) = 0.2
    assert torch.allclose(r, torch.tensor([[1 + s * 1.8, 1 + s * 0.2]], dtype=f64))


def test_world_gold_is_its_formula():
    w = make_world(SMALL, 7)
    assert torch.allclose(w.gold, gold_reward(w.features, w.prompt_features, w.gold_params, SMALL))


def test_preference_prob_by_hand():
    p = preference_prob(torch.tensor(1.0), torch.tensor(0.0), temperature=0.5, noise=0.25)
    s = 1 / (1 + math.exp(-2.0))
    assert float(p) == pytest.approx(0.75 * s + 0.25 * (1 - s))


@pytest.mark.parametrize("noise", [0.0, 0.25])
def test_label_rate_matches_sigmoid(noise):
    # One prompt, two candidates with gold gap d: P(chosen is the better one) = (1−ε)σ(d/τ) + ε(1−σ(d/τ)).
    d, tau, n = 0.8, 0.5, 20000
    cfg = replace(SMALL, n_prompts=1, n_candidates=2, label_temperature=tau, label_noise=noise)
    w = TabularWorld(cfg, torch.zeros(1, 2, SMALL.n_features, dtype=torch.float64),
                     torch.zeros(1, SMALL.n_prompt_features, dtype=torch.float64),
                     torch.tensor([[0.0, d]], dtype=torch.float64), {"pi0": torch.zeros(1, 2, dtype=torch.float64)})
    pairs = sample_pairs(w, w.policies["pi0"], n, torch.Generator().manual_seed(0))
    rate = (pairs.chosen == 1).double().mean().item()
    s = 1 / (1 + math.exp(-d / tau))
    expected = (1 - noise) * s + noise * (1 - s)
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
    assert (pairs.chosen != pairs.rejected).all()


def test_gold_labels_order_every_pair_by_gold():
    w = make_world(SMALL, 1)
    pairs = sample_pairs(w, w.policies["off"], 500, torch.Generator().manual_seed(0), gold_labels=True)
    assert (w.gold[pairs.prompt, pairs.chosen] >= w.gold[pairs.prompt, pairs.rejected]).all()


def test_standardize_uses_the_policy_weighted_moments():
    w = make_world(SMALL, 2)
    z = standardize(w.gold, w.policies["pi0"])
    mean, std = moments(z, w.policies["pi0"])
    assert float(mean) == pytest.approx(0.0, abs=1e-12) and float(std) == pytest.approx(1.0)
    # Monte-Carlo check of the weights: sample (x, y) with x uniform, y ~ π(x)
    ys = sample_responses(w.policies["pi0"], 4000, torch.Generator().manual_seed(0))
    assert float(z.gather(1, ys).mean()) == pytest.approx(0.0, abs=0.03)


def test_kl_is_zero_at_the_reference_and_positive_elsewhere():
    w = make_world(SMALL, 0)
    assert torch.allclose(kl(w.policies["pi0"], w.policies["pi0"]), torch.zeros(16, dtype=torch.float64))
    assert (kl(w.policies["B"], w.policies["pi0"]) > 0).all()


def _samples(w, table, m=64, seed=0):
    ys = sample_responses(w.policies["pi0"], m, torch.Generator().manual_seed(seed))
    return table.gather(1, ys), w.gold.gather(1, ys)


def test_low_variance_rm_is_perfectly_accurate_yet_has_lower_rv():
    w = make_world(SMALL, 5)
    low = low_variance_reward(w, w.policies["pi0"], factor=0.1, fraction=0.9, seed=0)
    s_low, g = _samples(w, low)
    s_gold, _ = _samples(w, w.gold)
    assert on_policy_accuracy(s_low, g) == 1.0
    pairs = sample_pairs(w, w.policies["off"], 300, torch.Generator().manual_seed(1), gold_labels=True)
    strict = w.gold[pairs.prompt, pairs.chosen] > w.gold[pairs.prompt, pairs.rejected]
    assert pairwise_accuracy(low[pairs.prompt, pairs.chosen][strict], low[pairs.prompt, pairs.rejected][strict]) == 1
    assert reward_variance(s_low) < 0.5 * reward_variance(s_gold)


def test_threshold_rm_is_perfectly_accurate_and_steeper_for_its_focus_policy():
    w = make_world(SMALL, 0)
    th = threshold_reward(w, w.policies["B"])
    order_gold, order_th = w.gold.argsort(1), th.argsort(1)
    assert torch.equal(order_gold, order_th)
    # within-prompt spread under the focus policy B is larger than under π₀ (in the same, raw units)
    def within(logits):
        p = torch.softmax(logits, -1)
        m = (p * th).sum(-1, keepdim=True)
        return float((p * (th - m) ** 2).sum(-1).mean())
    assert within(w.policies["B"]) > within(w.policies["pi0"])


def _three_candidates() -> TabularWorld:
    """One prompt, gold [0, 1, 2] (mean 1, sample sd 1, so z = [−1, 0, 1]), uniform focus policy."""
    f64 = torch.float64
    return TabularWorld(replace(SMALL, n_prompts=1, n_candidates=3), torch.zeros(1, 3, SMALL.n_features, dtype=f64),
                        torch.zeros(1, SMALL.n_prompt_features, dtype=f64), torch.tensor([[0.0, 1.0, 2.0]], dtype=f64),
                        {"u": torch.zeros(1, 3, dtype=f64)})


def test_band_reward_by_hand():
    # uniform focus: E z = 0, Std z = √(2/3) = s; band [−s, s]; r = 1 + [0.1·z + 2·clip(z + s, 0, 2s)]
    w = _three_candidates()
    s = math.sqrt(2 / 3)
    r = band_reward(w, w.policies["u"], slope=2.0, floor_slope=0.1, width=1.0)
    assert torch.allclose(r, torch.tensor([[1 - 0.1, 1 + 2 * s, 1 + 0.1 + 4 * s]], dtype=torch.float64))


def test_threshold_width_moves_the_threshold_by_hand():
    # width 0: t = E z = 0, m = E r* = 1; r = 1 + [0.05·z + 2.5·relu(z)] = 0.95, 1, 3.55
    w = _three_candidates()
    r = threshold_reward(w, w.policies["u"], width=0.0)
    assert torch.allclose(r, torch.tensor([[0.95, 1.0, 3.55]], dtype=torch.float64))
    # width 1 (the default): t = −√(2/3), so the middle candidate is on the steep part already
    assert threshold_reward(w, w.policies["u"])[0, 1] > 1.5


def _exact_rv(table: torch.Tensor, logits: torch.Tensor) -> float:
    p, z = torch.softmax(logits, -1), standardize(table, logits)
    m = (p * z).sum(-1, keepdim=True)
    return float((p * (z - m) ** 2).sum(-1).mean())


def test_band_rms_are_perfectly_accurate_and_their_rv_follows_their_focus():
    # the mix w·band(π₀) + (1 − w)·band(B): every member orders every pair like r*; moving w toward π₀'s band
    # lowers the RV under B and raises the RV under π₀ relative to it (the ratio is strictly increasing in w)
    w = make_world(WorldConfig(), 0)
    pi0, b = w.policies["pi0"], w.policies["B"]
    for slope in (1.0, 4.0):
        band_pi0, band_b = band_reward(w, pi0, slope), band_reward(w, b, slope)
        rv_pi0, rv_b = [], []
        for mix in (0.0, 0.25, 0.5, 0.75, 1.0):
            r = mix * band_pi0 + (1 - mix) * band_b
            assert torch.equal(r.argsort(1), w.gold.argsort(1))   # same order as r* in every prompt
            rv_pi0.append(_exact_rv(r, pi0))
            rv_b.append(_exact_rv(r, b))
        ratio = [x / y for x, y in zip(rv_pi0, rv_b)]
        assert all(x > y for x, y in zip(rv_b, rv_b[1:])) and all(x < y for x, y in zip(ratio, ratio[1:]))


def _max_count_z(pairs, n_candidates: int) -> float:
    """Largest |count − expected| / sd over candidates of the responses in the pairs (uniform: ~N(0, 1) each)."""
    counts = torch.bincount(torch.cat([pairs.chosen, pairs.rejected]), minlength=n_candidates).double()
    n = 2 * len(pairs)
    p = 1 / n_candidates
    return float(((counts - n * p).abs() / math.sqrt(n * p * (1 - p))).max())


def test_neutral_pairs_are_uniform_over_candidates_and_ordered_by_gold():
    w = make_world(replace(SMALL, n_prompts=4), 3)
    g = torch.Generator().manual_seed(0)
    pairs = neutral_pairs(w, 20000, g)
    assert (w.gold[pairs.prompt, pairs.chosen] > w.gold[pairs.prompt, pairs.rejected]).all()
    assert (pairs.chosen != pairs.rejected).all()
    assert _max_count_z(pairs, SMALL.n_candidates) < 4.5
    # the same statistic flags pairs drawn from the verbose off-policy policy
    off = sample_pairs(w, w.policies["off"], 20000, g, gold_labels=True)
    assert _max_count_z(off, SMALL.n_candidates) > 10
