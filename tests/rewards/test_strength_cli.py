"""`rewardlab data denoise` end to end on a small file with two rule rewards whose strengths are computed by hand:
exact flip/drop/smooth outputs that `train` reads back, exit 2 with FILE:LINE on bad input, outputs never over
an input."""

import json

import pytest

from rewardlab.data.load import load_pairs

RULES = '''
def length(prompt, response):
    return float(len(response))

def vowels(prompt, response):
    return float(sum(c in "aeiou" for c in response))
'''

# d(length), d(vowels) per pair: (3, 4) -> μ̂ 3.5, σ̂ 0.5;  (−3, −4) -> −3.5, 0.5;  (4, −2) -> 1, 3
ROWS = [{"prompt": "p1", "chosen": "aaaa", "rejected": "b", "id": "a"},
        {"prompt": "p2", "chosen": "b", "rejected": "aaaa", "id": "b", "weight": 2.0},
        {"prompt": "p3", "chosen": "bbbbbb", "rejected": "aa", "id": "c", "margin": 0.5}]


@pytest.fixture
def here(tmp_path, monkeypatch):
    (tmp_path / "denoise_rules.py").write_text(RULES)
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    monkeypatch.chdir(tmp_path)
    return tmp_path


REWARDS = ["-r", "python:denoise_rules:length", "-r", "python:denoise_rules:vowels"]


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_flip_output_exactly(cli, here):
    code, out, err = cli("data", "denoise", "pairs.jsonl", *REWARDS, "--action", "flip", "-o", "out.jsonl")
    assert code == 0, err
    assert read(here / "out.jsonl") == [
        {**ROWS[0], "strength_mean": 3.5, "strength_std": 0.5, "strength_flagged": False},
        {"prompt": "p2", "chosen": "aaaa", "rejected": "b", "id": "b", "weight": 2.0, "strength_mean": 3.5,
         "strength_std": 0.5, "strength_flagged": True},
        {**ROWS[2], "strength_mean": 1.0, "strength_std": 3.0, "strength_flagged": False}]
    assert "μ̂ < 0: 1 of 3 pairs" in out and "flagged (μ̂ < 0): 1 pairs" in out
    assert "python:denoise_rules:vowels: accuracy on the labels 0.333" in err


def test_drop_with_margins_exactly_and_train_reads_it(cli, here):
    code, _, err = cli("data", "denoise", "pairs.jsonl", *REWARDS, "--action", "drop", "--margin",
                       "--margin-scale", "0.5", "-o", "out.jsonl")
    assert code == 0, err
    rows = read(here / "out.jsonl")
    assert [(r["id"], r["margin"], r["strength_mean"]) for r in rows] == [("a", 1.75, 3.5), ("c", 0.5, 1.0)]
    pairs = load_pairs(here / "out.jsonl")  # the schema train reads: margins and weights as written
    assert [(p.chosen, p.margin, p.weight) for p in pairs] == [("aaaa", 1.75, 1.0), ("bbbbbb", 0.5, 1.0)]


def test_fraction_and_smooth(cli, here):
    code, _, err = cli("data", "denoise", "pairs.jsonl", *REWARDS, "--fraction", "0.34", "--action", "smooth",
                       "--smoothing", "0.25", "-o", "out.jsonl")
    assert code == 0, err
    rows = read(here / "out.jsonl")  # the one lowest pair (b) is written twice: weights 0.75·2 and 0.25·2
    assert [(r["id"], r["chosen"], r.get("weight"), r["strength_mean"]) for r in rows] == [
        ("a", "aaaa", None, 3.5), ("b", "b", 1.5, -3.5), ("b", "aaaa", 0.5, 3.5), ("c", "bbbbbb", None, 1.0)]


def test_report_writes_nothing_without_output(cli, here):
    code, out, _ = cli("data", "denoise", "pairs.jsonl", *REWARDS)
    assert code == 0 and "wrote" not in out and sorted(p.name for p in here.iterdir() if p.suffix == ".jsonl") == [
        "pairs.jsonl"]


def test_bad_row_exits_2_with_file_line(cli, here):
    bad = here / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"prompt": "p", "chosen": "x"}) + "\n")
    code, _, err = cli("data", "denoise", "bad.jsonl", *REWARDS, "--action", "flip", "-o", "out.jsonl")
    assert code == 2 and "bad.jsonl:2: field 'rejected' missing" in err
    assert not (here / "out.jsonl").exists()


def test_bad_options_and_output_over_input_exit_2(cli, here):
    code, _, err = cli("data", "denoise", "pairs.jsonl", *REWARDS, "--action", "flip")
    assert code == 2 and "--action flip needs --output" in err
    code, _, err = cli("data", "denoise", "pairs.jsonl", *REWARDS, "--action", "relabel", "--threshold", "0",
                       "--fraction", "0.2", "-o", "o.jsonl")
    assert code == 2 and "--action must be one of" in err and "not both" in err
    code, _, err = cli("data", "denoise", "pairs.jsonl", *REWARDS, "--action", "flip", "-o", "pairs.jsonl")
    assert code == 2 and "same file as the input FILE" in err
    assert read(here / "pairs.jsonl") == ROWS


def test_a_reward_that_scores_nan_names_the_pair(cli, here):
    (here / "nan_rule.py").write_text("def f(prompt, response):\n    return float('nan') if response == 'b' else 0.0\n")
    code, _, err = cli("data", "denoise", "pairs.jsonl", "-r", "python:nan_rule:f", "--action", "flip", "-o", "o.jsonl")
    assert code == 2 and "pairs.jsonl:1: reward python:nan_rule:f scored this pair nan" in err
