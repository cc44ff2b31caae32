"""The transformer world's pieces: gold by hand, label rate, prompts, cached π₀."""

import math
from dataclasses import replace

import pytest
import torch

from rewardlab.lab.lm_world import LMWorld, LMWorldConfig, low_variance_reward, pretrained_policy


def test_gold_value_by_hand():
    w = LMWorld(replace(LMWorldConfig(), n_letters=3, length_weight=0.5, length_optimum=4.0), seed=0)
    v, u = w.values.tolist(), w.offsets.tolist()
    # prompt "ab": b = (u_a + u_b)/2; response "ccb": mean value (2 v_c + v_b)/3, length term 0.5·(3 − 9/8)
    expected = (u[0] + u[1]) / 2 + (2 * v[2] + v[1]) / 3 + 0.5 * (3 - 9 / 8)
    assert w.gold_value("ab", "ccb") == pytest.approx(expected)
    assert w.gold().score(["ab"], ["ccb"]).tolist() == pytest.approx([expected])


def test_world_is_seeded_and_prompts_have_the_right_length():
    a, b = LMWorld(LMWorldConfig(), 1), LMWorld(LMWorldConfig(), 1)
    assert torch.equal(a.transitions, b.transitions) and a.prompts(5) == b.prompts(5)
    assert all(len(p) == 3 for p in a.prompts(20))
    assert torch.allclose(a.transitions.sum(1), torch.ones(a.config.n_letters))


@pytest.mark.parametrize("noise", [0.0, 0.25])
def test_label_rate_matches_sigmoid(noise):
    w = LMWorld(replace(LMWorldConfig(), label_temperature=0.5, label_noise=noise), 0)
    a, b = "aaaa", "bb"
    d = w.gold_value("abc", a) - w.gold_value("abc", b)
    pairs = w.label_pairs(["abc"], [[a, b]], 4000, seed=0)
    rate = sum(p.chosen == a for p in pairs) / len(pairs)
    s = 1 / (1 + math.exp(-d / 0.5))
    expected = (1 - noise) * s + noise * (1 - s)
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / len(pairs))


def test_policy_is_cached_as_safetensors(tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path))
    cfg = replace(LMWorldConfig(), corpus_size=100, pretrain_steps=2, n_layer=1, n_embd=16)
    m1, _ = pretrained_policy(LMWorld(cfg, 0))
    files = list(tmp_path.rglob("*"))
    assert any(f.name == "model.safetensors" for f in files) and not any(f.suffix in (".bin", ".pt") for f in files)
    m2, _ = pretrained_policy(LMWorld(cfg, 0))  # loaded from the cache
    for (k, p1), p2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(p1, p2), k


def test_low_variance_reward_shrinks_a_fixed_number_of_prompts_and_keeps_the_ranking():
    w = LMWorld(LMWorldConfig(), 3)
    prompts = [f"{a}{b}c" for a in "abcde" for b in "abcd"]  # 20 distinct prompts
    responses = ["a", "bb", "hij", "kkkkkkk", "abcdefghijkl"]
    means = [1.0 + 0.1 * i for i in range(len(prompts))]
    low = low_variance_reward(w, prompts, means, factor=0.1, fraction=0.9, seed=0)
    ratios = []
    for p, m in zip(prompts, means):
        g = [w.gold_value(p, r) for r in responses]
        r = low.score([p] * len(responses), responses).tolist()
        ratios.append(round((r[0] - r[1]) / (g[0] - g[1]), 6))  # the shrink factor of this prompt
        assert r == pytest.approx([m + ratios[-1] * (x - m) for x in g])  # m + c·(r* − m)
        assert sorted(range(5), key=r.__getitem__) == sorted(range(5), key=g.__getitem__)  # perfectly accurate
    assert sorted(ratios) == [0.1] * 18 + [1.0] * 2  # exactly round(0.1 · 20) prompts keep full variance
    other = low_variance_reward(w, prompts, means, factor=0.1, fraction=0.9, seed=1)
    assert [other.score([p], ["a"]).item() for p in prompts] != [low.score([p], ["a"]).item() for p in prompts]
