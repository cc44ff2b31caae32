"""The teacher study's machinery end to end on the test preset (a tiny random policy; the numbers mean nothing),
and its pieces by hand: gold-labelled pairs and the budget table."""

import json

import numpy as np
import pytest

from rewardlab.evaluate.metrics import spearman
from rewardlab.lab import constraints as C
from rewardlab.lab.teacher_study import budget_table, label_pairs

P = "Write one sentence about rain. At most 5 words. Include the word 'blue'."


def test_pairs_are_every_within_prompt_pair_with_distinct_gold_chosen_higher():
    responses = ["blue rain", "rain", "blue", "the rain is so very blue today", "rain"]
    pairs = label_pairs([P], responses, [0] * 5, seed=0)
    # golds: 1, 0.5, 1, 6/7, 0.5 -> of the 10 pairs, (0,2) and (1,4) tie
    assert len(pairs) == 8
    assert all(C.gold(P, p.chosen) > C.gold(P, p.rejected) for p in pairs)


def test_budget_table_gains_and_spearman_by_hand():
    def run(g0, g5):
        return {"evaluations": [{"step": 0, "gold_mean": g0}, {"step": 5, "gold_mean": g5}]}

    doc = {"rewards": {f"s{i}": {"rl_probe": [run(0.3, 0.3 + g), run(0.4, 0.4 + 2 * g)],
                                 "metrics": {"reward_variance": rv, "on_policy_accuracy": acc, "accuracy": acc}}
                       for i, (g, rv, acc) in enumerate([(0.1, 0.9, 0.6), (0.0, 0.1, 0.9), (0.05, 0.5, 0.7)])},
           "verdict": {"predicted_ranking": [{"reward": "s0", "rank": 1}, {"reward": "s2", "rank": 2},
                                             {"reward": "s1", "rank": 3}]}}
    t = budget_table(doc, {"a": "s0", "b": "s1", "c": "s2"}, 5)
    assert t["proxies"]["a"]["gain"] == pytest.approx(0.15) and t["proxies"]["b"]["gain"] == 0.0
    assert t["spearman"]["reward_variance"] == pytest.approx(1.0)
    assert t["spearman"]["on_policy_accuracy"] == pytest.approx(-1.0)
    assert t["spearman"]["verdict_order"] == pytest.approx(spearman([-1, -3, -2], [0.15, 0.0, 0.075]))


def test_study_command_runs_end_to_end_on_the_test_preset(cli, tmp_path):
    code, out, err = cli("study", "--preset", "test", "-o", tmp_path / "s")
    assert code == 0, err
    doc = json.loads((tmp_path / "s" / "study.json").read_text())
    assert set(doc["proxies"]) == {"tiny-20", "flat", "verbose", "noisy"}
    for budget in ("early", "late"):
        assert set(doc[budget]["spearman"]) == {"reward_variance", "on_policy_accuracy", "heldout_accuracy",
                                                "verdict_order"}
        assert all(np.isfinite(p["gain"]) for p in doc[budget]["proxies"].values())
    assert "verdict:" in out and len(doc["findings"]) == 4
    assert (tmp_path / "s" / "teachers" / "report.html").exists()


def test_spearman_critical_values_are_the_tables():
    """Two-sided α = 0.05 critical values of Spearman's ρ (exact, no ties): n = 5: 1.000, 6: 0.886, 7: 0.786,
    8: 0.738 (the published tables, e.g. Zar 1972)."""
    from rewardlab.lab.teacher_study import spearman_critical

    assert [round(spearman_critical(n), 3) for n in (5, 6, 7, 8)] == [1.0, 0.886, 0.786, 0.738]
    assert spearman_critical(4) == float("inf")  # 4! = 24 orders: the best p is 2/24


def test_a_claim_holds_only_when_its_coefficient_is_significant():
    from rewardlab.lab.teacher_study import findings

    def budget(step, rv, acc):
        return {"step": step, "proxies": dict.fromkeys("abcdef", {}),
                "spearman": {"reward_variance": rv, "on_policy_accuracy": acc, "verdict_order": 0.0}}

    noisy = findings(budget(3, 0.37, -0.03), budget(6, 0.26, 0.14))  # the measured quick run (6 proxies)
    assert noisy[0].endswith("not significant (|ρ| over 6 proxies needs ≥ 0.89 for p < 0.05)")
    assert findings(budget(3, 0.94, 0.1), budget(6, 0.2, 0.9))[0].endswith("HOLDS")
    assert findings(budget(3, 0.1, 0.94), budget(6, 0.9, 0.2))[0].endswith("DOES NOT HOLD")
    assert findings(budget(3, 0.94, 0.1), budget(6, 0.2, 0.9))[1].endswith("HOLDS")
