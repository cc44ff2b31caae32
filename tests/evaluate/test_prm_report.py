"""The PRM teacher report (eval-prm --report): ProcessBench, step F1 and best-of-n per aggregation, by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rewardlab.data.step_encode import StepTruncation
from rewardlab.data.stepwise import parse_stepwise_row
from rewardlab.evaluate.prm_report import render_markdown, write_prm_report
from rewardlab.evaluate.processbench import evaluate_prm

ROWS = [{"problem": "q1", "steps": ["a", "b", "c"], "label": 1, "final_answer_correct": False},
        {"problem": "q1", "steps": ["a", "d"], "label": -1, "final_answer_correct": True},
        {"problem": "q2", "steps": ["e"], "label": 0, "final_answer_correct": False},
        {"problem": "q2", "steps": ["f", "g"], "label": -1, "final_answer_correct": True}]
CANNED = {("a", "b", "c"): [0.9, 0.2, 0.1], ("a", "d"): [0.8, 0.7], ("e",): [0.6], ("f", "g"): [0.7, 0.65]}


@pytest.fixture
def summary():
    reward = SimpleNamespace(encoder=SimpleNamespace(stats=StepTruncation()),
                             score_steps=lambda prompts, steps: [CANNED[tuple(s)] for s in steps])
    r = evaluate_prm(reward, [parse_stepwise_row(x)[1] for x in ROWS])
    return {"model": "canned", "separator": "\n", "max_length": 64, "threshold": 0.5, "files": {"set.jsonl": r}}


def test_metrics_of_the_canned_prm_by_hand(summary):
    r = summary["files"]["set.jsonl"]
    # predicted first errors: 1 (right), −1 (right), −1 (label 0: wrong), −1 (right)
    assert r["processbench"] == {"error_accuracy": 0.5, "correct_accuracy": 1.0, "f1": pytest.approx(2 / 3),
                                 "n_error": 2, "n_correct": 2}
    # labelled steps: a b | a d | e | f g; "wrong" = score < 0.5: only b; e (label wrong, 0.6) is missed
    e, c = r["step_f1"]["error"], r["step_f1"]["correct"]
    assert (e["tp"], e["fp"], e["fn"], e["tn"]) == (1, 0, 1, 5) and e["f1"] == pytest.approx(2 / 3)
    assert c["precision"] == pytest.approx(5 / 6) and c["f1"] == pytest.approx(10 / 11)
    # q1: every aggregation prefers the correct candidate; q2: [0.6] vs [0.7, 0.65] -> only product picks [0.6]
    b = r["best_of_n"]
    assert (b["min"], b["last"], b["product"], b["mean"], b["oracle"], b["random"]) == (1.0, 1.0, 0.5, 1.0, 1.0, 0.5)


def test_markdown_tables(summary):
    md = render_markdown(summary)
    assert "| set.jsonl | 0.500 | 1.000 | 0.667 | 2 | 2 |" in md
    assert "| set.jsonl | error | 1.000 | 0.500 | 0.667 | 0.857 | 7 |" in md
    assert "| set.jsonl | correct | 0.833 | 1.000 | 0.909 | 0.857 | 7 |" in md
    assert "| data | prompts | n | min | last | product | mean | oracle | random |" in md
    assert "| set.jsonl | 2 | 2.0 | 1.000 | 1.000 | 0.500 | 1.000 | 1.000 | 0.500 |" in md


def test_report_files(summary, tmp_path):
    paths = write_prm_report(tmp_path / "rep", summary)
    assert set(paths) == {"metrics.json", "bon_by_aggregation.png", "report.html", "report.md"}
    assert json.loads(paths["metrics.json"].read_text())["files"]["set.jsonl"]["best_of_n"]["product"] == 0.5
    page = paths["report.html"].read_text()
    assert page.count("data:image/png;base64,") == 1 and "ProcessBench (first-error index)" in page
    assert "Step-level F1: error steps" in page and "0.667" in page and "0.909" in page
    for m in ("min", "last", "product", "mean", "oracle", "random"):
        assert f"<th>{m}</th>" in page


def test_eval_prm_cli_writes_the_report(tmp_path, cli, corpus):
    from tests.models.test_prm import save_token_classifier

    save_token_classifier("gpt2", corpus, tmp_path / "prm", 2)
    data = tmp_path / "pb.jsonl"
    data.write_text("".join(json.dumps({"problem": "help me", "steps": ["the cat sat", "on a mat"], "label": lab,
                                        "final_answer_correct": ok}) + "\n" for lab, ok in ((-1, True), (0, False))))
    code, stdout, err = cli("eval-prm", tmp_path / "prm", "--data", data, "--report", tmp_path / "rep",
                            "--device", "cpu")
    assert code == 0, err
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    pb = doc["files"][str(data)]["processbench"]
    md = (tmp_path / "rep" / "report.md").read_text()
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    assert f"| {data} | {fmt(pb['error_accuracy'])} | {fmt(pb['correct_accuracy'])} | {fmt(pb['f1'])} | 1 | 1 |" in md
    assert (tmp_path / "rep" / "report.html").exists() and "report.html" in stdout
    (tmp_path / "file").write_text("x")
    code, _, err = cli("eval-prm", tmp_path / "prm", "--data", data, "--report", tmp_path / "file")
    assert code == 2 and "not a directory" in err
