"""Verbalized confidence statements and PPO-M's calibrated reward-modeling pairs (data/confidence.py)."""

import json
import random

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.confidence import (
    INSTRUCTION,
    confidence_pairs,
    read_confidence,
    strip_confidence,
)
from rewardlab.data.records import PreferencePair
from rewardlab.errors import UserError


@pytest.mark.parametrize("text, value", [
    ("Paris. Confidence: 7", 7.0), ("Paris.\nconfidence: 7/10.", 7.0), ("CONFIDENCE:8.5", 8.5),
    ("Confidence: 3 ... on reflection, Confidence: 9", 9.0), ("Confidence: 12", 10.0), ("Paris.", None),
    ("I have no confidence in this", None),
])
def test_read_confidence(text, value):
    assert read_confidence(text) == value


def test_strip_confidence():
    assert strip_confidence("Paris.\nConfidence: 7/10.") == "Paris."
    assert strip_confidence("Paris. Confidence: 9!") == "Paris."
    assert strip_confidence([{"role": "assistant", "content": "Lyon Confidence: 2"}]) == \
        [{"role": "assistant", "content": "Lyon"}]


def test_confidence_pairs_by_hand():
    pairs = [PreferencePair("2+2?", "4", "5", id="a"), PreferencePair("3+3?", "6 Confidence: 1", "7", subset="s")]
    rows = list(confidence_pairs(pairs, seed=3))
    rng = random.Random(3)  # four draws per pair: h, l for the chosen answer, h', l' for the rejected one
    draws = [(rng.randint(7, 10), rng.randint(0, 3), rng.randint(7, 10), rng.randint(0, 3)) for _ in pairs]
    prompt = f"2+2?\n\n{INSTRUCTION}"
    assert rows[0] == {"prompt": prompt, "chosen": f"4\nConfidence: {draws[0][0]}.",
                       "rejected": f"4\nConfidence: {draws[0][1]}.", "id": "a#chosen"}
    assert rows[1] == {"prompt": prompt, "chosen": f"5\nConfidence: {draws[0][3]}.",
                       "rejected": f"5\nConfidence: {draws[0][2]}.", "id": "a#rejected"}
    assert rows[2]["chosen"] == f"6\nConfidence: {draws[1][0]}." and rows[2]["subset"] == "s"  # old one replaced
    for row in rows[::2]:  # the right answer: high ≻ low
        assert read_confidence(row["chosen"]) >= 7 and read_confidence(row["rejected"]) <= 3
    for row in rows[1::2]:  # the wrong answer: low ≻ high
        assert read_confidence(row["chosen"]) <= 3 and read_confidence(row["rejected"]) >= 7
    assert list(confidence_pairs(pairs, seed=3, instruction=""))[0]["prompt"] == "2+2?"


def test_cli_writes_valid_pairs_and_refuses_bad_rows(tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "good", "rejected": "bad"}) + "\n"
                           for i in range(3)))
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["data", "confidence-pairs", str(src), "-o", str(out), "--instruction", ""])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["prompt"] == "q0" and rows[1]["chosen"].startswith("bad\nConfidence: ")
    assert CliRunner().invoke(app, ["data", "validate", str(out)]).exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q"}\n')
    res = CliRunner().invoke(app, ["data", "confidence-pairs", str(bad), "-o", str(tmp_path / "b.jsonl")])
    assert isinstance(res.exception, UserError)  # the console entry point prints it and exits 2
    assert "bad.jsonl:1: field 'chosen' missing" in str(res.exception) and not (tmp_path / "b.jsonl").exists()
