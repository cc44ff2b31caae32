"""The ranking rule on hand-made numbers: direction first, speed second, ties as ties, flags from the numbers."""

import numpy as np
import pytest

from rewardlab.teachers.verdict import ALIGNED, MISALIGNED, UNCHECKED, UNCLEAR, Candidate, decide, tier

B = 2000


def cand(name, opa, ci, rv, rv_spread=0.01, gains=None, proxy_gains=None, seed=0):
    """A candidate whose RV replicates are rv + noise on shared resamples (paired: the same noise for all)."""
    noise = np.random.default_rng(seed).normal(0, 1, B)
    return Candidate(name, {"on_policy_accuracy": opa, "reward_variance": rv, "accuracy": None},
                     "on_policy_accuracy", ci, rv + rv_spread * noise,
                     None if gains is None else np.array(gains, dtype=float),
                     None if proxy_gains is None else np.array(proxy_gains, dtype=float))


def test_tiers_from_the_ci():
    assert tier(cand("a", 0.7, (0.6, 0.8), 0.5)) == ALIGNED
    assert tier(cand("m", 0.3, (0.2, 0.4), 0.5)) == MISALIGNED
    assert tier(cand("u", 0.52, (0.45, 0.6), 0.5)) == UNCLEAR
    assert tier(Candidate("x", {"reward_variance": 0.5})) == UNCHECKED


def test_an_anti_aligned_high_variance_reward_is_never_first():
    anti = cand("anti", 0.2, (0.1, 0.3), rv=0.9, gains=[5.0, 6.0, 7.0])  # fast, in the wrong direction
    weak = cand("weak", 0.6, (0.55, 0.65), rv=0.05, gains=[0.01, 0.02, 0.01])
    for by_gain in (True, False):
        cs = [anti, weak] if by_gain else [cand("anti", 0.2, (0.1, 0.3), 0.9), cand("weak", 0.6, (0.55, 0.65), 0.05)]
        v = decide(cs)
        assert [r["reward"] for r in v["ranking"]] == ["weak", "anti"]
        assert v["ranking"][1]["tier"] == MISALIGNED
        assert any("misaligned on this policy: on-policy accuracy 0.200 [0.100, 0.300]" in f
                   for f in v["ranking"][1]["flags"])
    only_bad = decide([cand("anti", 0.2, (0.1, 0.3), 0.9)])
    assert only_bad["verdict"].startswith("no reward is aligned on this policy")


def test_accurate_steep_ranks_above_accurate_flat():
    steep, flat = cand("steep", 0.9, (0.85, 0.95), rv=0.8), cand("flat", 0.95, (0.9, 0.99), rv=0.05)
    v = decide([flat, steep])  # no probes: reward variance orders the aligned tier
    assert [r["reward"] for r in v["ranking"]] == ["steep", "flat"] and v["ordered_by"] == "reward variance"
    assert [r["rank"] for r in v["ranking"]] == [1, 2]
    assert v["verdict"] == "best teacher for this policy: steep"
    # with probes the realized gain decides, even against the variance
    steep.gains, flat.gains = np.array([0.1, 0.2, 0.15]), np.array([0.3, 0.4, 0.35])
    v = decide([steep, flat])
    assert [r["reward"] for r in v["ranking"]] == ["flat", "steep"] and v["ordered_by"] == "probe gold gain"
    assert [r["reward"] for r in v["predicted_ranking"]] == ["steep", "flat"]  # what the metrics alone said


def test_overlapping_cis_are_ties_with_what_would_separate_them():
    a, b = cand("a", 0.9, (0.8, 1.0), rv=0.50, rv_spread=0.0), cand("b", 0.9, (0.8, 1.0), rv=0.49, seed=1)
    b.rv_replicates = 0.49 + 0.05 * np.random.default_rng(1).normal(0, 1, B)  # paired difference CI includes 0
    v = decide([a, b])
    assert [r["rank"] for r in v["ranking"]] == [1, 1]
    assert v["ranking"][0]["tied_with"] == ["b"] and v["ranking"][1]["tied_with"] == ["a"]
    assert "a, b cannot be told apart at this budget" in v["verdict"] and "--num-samples" in v["verdict"]
    # probes that disagree in sign across seeds: still a tie, and the hint names the probe budget
    a.gains, b.gains = np.array([0.1, -0.05, 0.2]), np.array([0.05, 0.1, 0.0])
    v = decide([a, b])
    assert [r["rank"] for r in v["ranking"]] == [1, 1] and "--probe-seeds" in v["verdict"]
    # every seed agrees: separated
    b.gains = np.array([0.0, -0.1, 0.1])
    assert [r["rank"] for r in decide([a, b])["ranking"]] == [1, 2]


def test_reward_hacking_flag_from_the_probe():
    c = cand("h", 0.6, (0.55, 0.65), 0.5, gains=[-0.2, -0.3, -0.25], proxy_gains=[1.0, 1.2, 0.9])
    flags = decide([c])["ranking"][0]["flags"]
    assert any(f.startswith("reward hacking in the probe: proxy +1.03 while gold -0.25") for f in flags)
    c.gains = np.array([-0.2, 0.1, -0.2])
    assert any(f.startswith("possible reward hacking") for f in decide([c])["ranking"][0]["flags"])


def test_agreement_is_spearman_with_the_realized_gain():
    cs = [cand(n, 0.8, (0.7, 0.9), rv, gains=[g, g, g]) for n, rv, g in
          (("a", 0.9, 0.3), ("b", 0.5, 0.2), ("c", 0.1, 0.1), ("d", 0.3, 0.25))]
    agree = decide(cs)["agreement"]
    # RV order a > b > d > c, gain order a > d > b > c: ranks differ in one swap: 1 − 6·2/(4·15) = 0.8
    assert agree["reward_variance"] == pytest.approx(0.8)
    assert agree["verdict_order"] == pytest.approx(0.8)
    assert np.isnan(agree["on_policy_accuracy"])  # constant: Spearman undefined

