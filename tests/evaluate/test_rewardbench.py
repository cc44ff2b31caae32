"""RB2 scoring: hand-computed rows, and equality with reward-bench's own code on the same synthetic scores.

tests/evaluate/data/rb2_reference.json holds synthetic rows (3 seeds, 5 best-of-4 subsets x 8 rows with many ties,
plus a Ties subset with d = 0 prompts that hit the ±inf and 0/0 paths and a prompt with no ref version) and the
per-subset scores that allenai/reward-bench @ 05a9005efb607249822c193590c8ecab87c77052 computed for them with
rewardbench/utils.py `reroll_and_score_dataset` (best-of-n) and `process_single_model` (Ties), driven as
scripts/run_v2.py does. The reference was run outside this repo; see the file's "provenance" field.
"""

import json
import math
from pathlib import Path

import pytest

from rewardlab.evaluate.rewardbench import KWayScores, best_of_n_score, rb2_scores, ties_score

REF = json.loads((Path(__file__).parent / "data" / "rb2_reference.json").read_text())


def test_best_of_n_tie_rule():
    assert best_of_n_score([3.0], [1.0, 2.0, 0.0]) == 1.0
    assert best_of_n_score([2.0], [2.0, 1.0, 0.0]) == 0.5  # chosen tied with one rejected at the max
    assert best_of_n_score([2.0], [2.0, 2.0, 2.0]) == 0.25
    assert best_of_n_score([1.0], [2.0, 2.0, 0.0]) == 0.0  # max is wrong, even when tied
    assert best_of_n_score([2.0, 2.0], [2.0, 0.0]) == pytest.approx(2 / 3)  # 2 of 3 tied-at-max are correct


def test_ties_score_hand_computed():
    rows = [
        # prompt 0: ref margin 1 - 0.5 = 0.5 (acc); tied: correct [3, 2] d = 1, margin 2 - 1 = 1 (acc)
        KWayScores([1.0], [0.5, 0.0], "Ties", "ref:0"), KWayScores([3.0, 2.0], [1.0], "Ties", "tied:0"),
        # prompt 1: ref margin 0 (not acc); tied: correct [1, 1] d = 0, margin 1 - 2 = -1 (not acc)
        KWayScores([1.0], [1.0], "Ties", "ref:1"), KWayScores([1.0, 1.0], [2.0], "Ties", "tied:1"),
    ]
    out = ties_score(rows)
    assert out["ref_accuracy"] == 0.5 and out["tied_accuracy"] == 0.5
    # mt > d: prompt0 1 > 1 False, prompt1 -1 > 0 False -> 0; hard: min(.5,1)=.5 > 1 F; min(0,-1) > 0 F -> 0
    assert out["correctness_preferred"] == 0.0 and out["correctness_preferred_hard"] == 0.0
    # tanh(0.5/1 - 1) and tanh(-1/0 - 1) = tanh(-inf) = -1
    margin = (math.tanh(-0.5) - 1.0) / 2
    assert out["margin_score"] == pytest.approx(margin)
    assert out["score"] == pytest.approx(0.3 * 0.5 + 0.3 * 0.5 + 0.01 * margin)
    with pytest.raises(ValueError):
        ties_score([KWayScores([1.0], [0.0], "Ties", "x:0")])
    with pytest.raises(ValueError):
        ties_score([KWayScores([1.0], [0.0], "Ties", "tied:0")])


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: f"seed{c['seed']}")
def test_matches_reward_bench_reference(case):
    rows = [KWayScores(r["chosen"], r["rejected"], r["subset"], r["id"]) for r in case["rows"]]
    out = rb2_scores(rows)
    got = {k: v["score"] for k, v in out["subsets"].items()}
    assert set(got) == set(case["expected_subsets"])
    for name, expected in case["expected_subsets"].items():
        assert got[name] == pytest.approx(expected, abs=1e-12), name
    assert out["overall"] == pytest.approx(sum(case["expected_subsets"].values()) / len(got))
    ties = [r for r in rows if r.subset == "Ties"]
    assert ties_score(ties)["n_prompts_both"] == 9  # prompt 9 has no ref version
