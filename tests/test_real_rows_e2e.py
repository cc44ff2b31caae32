"""hh-rlhf-shaped rows through every CLI stage: implicit prompts, multi-turn prompts longer than the budget, empty
responses, odd bytes. Every row trains by default, nothing crashes, counts are reported, input order is kept."""

import json
import random

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app

HUMAN, ASSISTANT = "\n\nHuman: ", "\n\nAssistant: "


def hh_rows(n: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = "the cat dog sat ran on a mat big small red blue good bad answer question please help me".split()

    def say(lo, hi):
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))

    rows = []
    for i in range(n):
        turns = rng.randint(1, 4)
        history = "".join(f"{HUMAN}{say(3, 30)}{ASSISTANT}{say(3, 30)}" for _ in range(turns - 1))
        prompt = f"{history}{HUMAN}{say(2, 12)} ✓ héllo 🐈{ASSISTANT}"
        chosen, rejected = "good " + say(1, 10), "bad " + say(1, 10)
        if i == 7:
            rejected = ""  # hh-rlhf has empty responses
        if i == 8:
            chosen, rejected = "the same first words then yes", "the same first words then no"
        rows.append({"chosen": prompt + chosen, "rejected": prompt + rejected})
    return rows


@pytest.fixture
def hh_file(tmp_path):
    f = tmp_path / "hh.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in hh_rows()))
    return f


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def test_every_hh_row_trains_scores_and_evaluates(hh_file, tmp_path):
    out = tmp_path / "rm"
    _run("train", "--data", hh_file, "--base", "tiny", "--output", out, "--max-length", 64, "--batch-size", 8,
         "--max-steps", 3)
    run = json.loads((out / "run.json").read_text())
    assert run["metrics"]["train_pairs"] == 40  # every row, the empty response included
    assert run["truncation"]["prompt_truncated"] > 0  # long multi-turn prompts were cut from the left...
    assert run["truncation"]["response_truncated"] == 0  # ...and no response lost its end

    scores = tmp_path / "scores.jsonl"
    _run("score", out, hh_file, "-o", scores)
    lines = [json.loads(x) for x in scores.read_text().splitlines()]
    assert len(lines) == 40 and all("chosen_score" in x and "rejected_score" in x for x in lines)

    # identical-prefix pairs are told apart: the extracted prompt + response keep the differing ends
    assert lines[8]["chosen_score"] != lines[8]["rejected_score"]
    _run("eval", out, "--data", hh_file, "--output", tmp_path / "eval")
    assert (tmp_path / "eval" / "metrics.json").exists()


def test_hh_rows_as_conversations(tmp_path):
    """The same rows in TRL's conversational implicit form: shared turns become the prompt."""
    rows = []
    for r in hh_rows(12, seed=1):
        conv = []
        for part in r["chosen"].split(HUMAN)[1:]:
            user, _, answer = part.partition(ASSISTANT)
            conv += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        last_rejected = r["rejected"].rpartition(ASSISTANT)[2]
        rows.append({"chosen": conv, "rejected": conv[:-1] + [{"role": "assistant", "content": last_rejected}]})
    f = tmp_path / "conv.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _run("train", "--data", f, "--base", "tiny", "--output", tmp_path / "rm", "--max-length", 48,
         "--batch-size", 4, "--max-steps", 2)
    _run("score", tmp_path / "rm", f, "-o", tmp_path / "s.jsonl")
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 12
