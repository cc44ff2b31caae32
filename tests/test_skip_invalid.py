"""Every command whose data errors advise --skip-invalid has it, and it skips exactly the invalid rows."""

import json

import pytest

ROWS = [{"prompt": "the cat", "chosen": " sat down", "rejected": " ran"},
        {"prompt": "a dog", "chosen": 3, "rejected": " no"},  # invalid: chosen is not text
        {"prompt": "the sun", "chosen": " is warm", "rejected": " is"}]
LEN = "def length(prompt, response):\n    return float(len(response))\n"


@pytest.fixture
def world(tmp_path, monkeypatch):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "the cat"}\n{"prompt": "a dog"}\n')
    (tmp_path / "skipmod.py").write_text(LEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("command", ["score", "eval", "teachers", "mixture-train"])
def test_the_advice_is_an_option_that_works(world, cli, command):
    data = world / "pairs.jsonl"
    args = {"score": ["score", "python:skipmod:length", data, "-o", world / "s.jsonl"],
            "eval": ["eval", "python:skipmod:length", "--data", data, "-o", world / "e"],
            "teachers": ["teachers", "--policy", "tiny", "--reward", "python:skipmod:length", "--prompts",
                         world / "prompts.jsonl",
                         "--data", data, "-m", "2", "--max-new-tokens", "4", "-o", world / "t"],
            "mixture-train": ["mixture-train", "--data", data, "--epochs", "1", "-o", world / "m"]}[command]
    code, _, err = cli(*args)
    assert code == 2 and f"{data}:2:" in err and "--skip-invalid" in err
    code, out, err = cli(*args, "--skip-invalid")
    assert code == 0, err
    if command == "score":
        scored = [json.loads(line) for line in (world / "s.jsonl").read_text().splitlines()]
        assert [r["chosen_score"] for r in scored] == [9.0, 8.0]  # rows 1 and 3: len(" sat down"), len(" is warm")
    if command == "eval":
        doc = json.loads((world / "e" / "metrics.json").read_text())
        assert doc["models"]["python:skipmod:length"]["pairs"]["n_pairs"] == 2


@pytest.mark.parametrize("command", ["score", "inspect", "judge", "mixture-train", "calibrate", "eval", "teachers",
                                     "train", "data stats", "eval-prm"])
def test_every_command_that_reads_rows_has_it(cli, command):
    code, out, _ = cli(*command.split(), "--help")
    assert code == 0 and "--skip-invalid" in out
