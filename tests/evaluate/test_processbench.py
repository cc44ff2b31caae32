"""ProcessBench metric, step-level F1 and best-of-n accuracy per aggregation, on hand-computed cases; eval-prm."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from rewardlab.data.step_encode import StepTruncation
from rewardlab.data.stepwise import parse_stepwise_row
from rewardlab.evaluate.processbench import (
    best_of_n_accuracy,
    bon_by_aggregation,
    evaluate_prm,
    mean_f1,
    predict_first_error,
    processbench_scores,
    step_f1,
)

NAN = math.nan


def test_predict_first_error():
    assert predict_first_error([0.9, 0.4, 0.1]) == 1
    assert predict_first_error([0.9, NAN, 0.6]) == -1  # an unscored step is not a predicted error
    assert predict_first_error([0.9, 0.6], threshold=0.7) == 1
    assert predict_first_error([0.5]) == -1  # not below the threshold


def test_processbench_scores_by_hand():
    labels = [2, -1, 0, -1, 1]
    predicted = [2, -1, 1, 0, -1]
    r = processbench_scores(predicted, labels)
    # erroneous: 2→2 right, 0→1 wrong, 1→−1 wrong: 1/3; all-correct: −1 right, −1→0 wrong: 1/2
    assert r["error_accuracy"] == pytest.approx(1 / 3) and r["correct_accuracy"] == 0.5
    assert r["f1"] == pytest.approx(0.4)  # 2·(1/3)·(1/2) / (1/3 + 1/2)
    assert (r["n_error"], r["n_correct"]) == (3, 2)
    assert processbench_scores([0, -1], [1, -1])["f1"] == 0.0
    only_errors = processbench_scores([0], [0])
    assert only_errors["correct_accuracy"] is None and only_errors["f1"] is None
    assert mean_f1([{"f1": 0.4}, {"f1": 0.8}]) == pytest.approx(0.6)
    assert mean_f1([{"f1": 0.4}, {"f1": None}]) is None


def test_step_f1_by_hand():
    scores = [[0.9, 0.2, 0.7], [0.3, 0.8], [0.1, 0.6]]
    labels = [[1, 0, None], [1, 0], [0, 0]]
    # error class: (0.2,0) tp, (0.1,0) tp, (0.3,1) fp, (0.8,0) fn, (0.6,0) fn, (0.9,1) tn; the unlabeled step skipped
    e = step_f1(scores, labels)
    assert (e["tp"], e["fp"], e["fn"], e["tn"], e["steps"]) == (2, 1, 2, 1, 6)
    assert e["precision"] == pytest.approx(2 / 3) and e["recall"] == 0.5 and e["f1"] == pytest.approx(4 / 7)
    assert e["accuracy"] == 0.5
    c = step_f1(scores, labels, positive="correct")
    assert c["precision"] == pytest.approx(1 / 3) and c["recall"] == 0.5 and c["f1"] == pytest.approx(0.4)
    assert step_f1([[0.9]], [[1]])["f1"] == 0.0  # no error to find: 0/0 ratios are 0


def test_best_of_n_accuracy_ties_and_nan():
    scores = [[0.2, 0.9, 0.5], [0.7, 0.7, 0.1], [0.3, NAN]]
    correct = [[False, True, False], [True, False, False], [False, True]]
    assert best_of_n_accuracy(scores, correct) == pytest.approx((1 + 0.5 + 0) / 3)
    assert best_of_n_accuracy([], []) is None


def test_bon_by_aggregation_where_aggregations_disagree():
    steps = [[0.9, 0.9, 0.2], [0.6, 0.6],  # prompt A: a confident solution with one bad step (wrong answer)
             [0.95, 0.3, 0.95], [0.5],      # prompt B: a right solution with a doubtful step vs a short wrong one
             [0.9]]                          # prompt C: one candidate, not a best-of-n group
    correct = [False, True, True, False, True]
    groups = ["A", "A", "B", "B", "C"]
    r = bon_by_aggregation(steps, correct, groups)
    # A: min/last/product pick the right one (0.6 > 0.2 / 0.2 / 0.162), mean the wrong one (0.667 > 0.6)
    # B: min picks the wrong one (0.5 > 0.3), last the right (0.95), product the wrong (0.5 > 0.271), mean the right
    assert (r["min"], r["last"], r["product"], r["mean"]) == (0.5, 1.0, 0.5, 0.5)
    assert (r["oracle"], r["random"], r["groups"], r["n_mean"]) == (1.0, 0.5, 2, 2.0)


def test_evaluate_prm_composes_the_metrics():
    rows = [{"problem": "q1", "steps": ["a", "b", "c"], "label": 1, "final_answer_correct": False},
            {"problem": "q1", "steps": ["a", "d"], "label": -1, "final_answer_correct": True}]
    examples = [parse_stepwise_row(r)[1] for r in rows]
    canned = {("a", "b", "c"): [0.9, 0.2, NAN], ("a", "d"): [0.8, 0.7]}
    reward = SimpleNamespace(encoder=SimpleNamespace(stats=StepTruncation()),
                             score_steps=lambda prompts, steps: [canned[tuple(s)] for s in steps])
    r = evaluate_prm(reward, examples)
    assert r["processbench"]["error_accuracy"] == 1.0 and r["processbench"]["correct_accuracy"] == 1.0
    # 4 steps: the one after the error is unlabeled in ProcessBench (and unscored here)
    assert r["step_f1"]["error"]["tp"] == 1 and r["step_f1"]["error"]["steps"] == 4
    assert r["best_of_n"]["min"] == 1.0 and r["best_of_n"]["groups"] == 1


def test_eval_prm_cli_writes_json(tmp_path, cli, corpus):
    from rewardlab.rewards.prm import PRMReward
    from tests.models.test_prm import save_token_classifier

    save_token_classifier("gpt2", corpus, tmp_path / "prm", 2)
    rows = [{"problem": "help me", "steps": ["the cat sat", "on a mat"], "label": lab, "final_answer_correct": ok}
            for lab, ok in ((-1, True), (0, False), (1, False), (-1, True))]
    files = []
    for name in ("gsm8k", "math"):
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "m.json"
    code, stdout, err = cli("eval-prm", tmp_path / "prm", "--data", files[0], "--data", files[1], "--output", out,
                            "--device", "cpu")
    assert code == 0, err
    doc = json.loads(out.read_text())
    scores = PRMReward.from_pretrained(tmp_path / "prm", device="cpu").score_steps(["help me"], [["the cat sat",
                                                                                                 "on a mat"]])[0]
    pred = predict_first_error(scores)  # every row has the same steps: one prediction, compared to each label
    expected = processbench_scores([pred] * 4, [-1, 0, 1, -1])
    got = doc["files"][str(files[0])]["processbench"]
    assert got == expected and doc["mean_f1"] == expected["f1"]
    assert "ProcessBench" in stdout
    code, _, err = cli("eval-prm", tmp_path / "prm", "--data", tmp_path / "missing.jsonl")
    assert code == 2 and "no such file" in err
