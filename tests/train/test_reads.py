"""`rewardlab train` reads its data files once: one pass validates and yields the pairs (a 'tiny' base holds them
for its tokenizer and the encoding), every objective alike; a bad row still fails before the run directory exists."""

import json
from collections import Counter
from pathlib import Path

import pytest

from rewardlab.data import load
from rewardlab.errors import UserError


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """How many times each file is opened by the row reader (every loader reads through it)."""
    counts: Counter = Counter()
    real = load.read_rows

    def counting(path, *args, **kwargs):
        counts[Path(path).name] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(load, "read_rows", counting)
    return counts


@pytest.fixture
def files(tmp_path, pair_rows) -> tuple[Path, Path]:
    data, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    held.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:16]))
    return data, held


TINY = ["--max-steps", "2", "--batch-size", "8", "--max-length", "48"]


def test_a_tiny_run_reads_the_training_file_once(tmp_path, files, reads, cli):
    data, held = files
    code, _, err = cli("train", "--data", data, "--eval", held, "--output", tmp_path / "rm", *TINY)
    assert code == 0, err
    assert reads == {"train.jsonl": 1, "held.jsonl": 1}  # was 4 and 2: validate, tokenizer, validate, encode
    reads.clear()  # a pretrained base (here the run just saved) streams the pairs into the token store: once too
    code, _, err = cli("train", "--data", data, "--output", tmp_path / "ft", "--base", tmp_path / "rm", *TINY)
    assert code == 0, err
    assert reads == {"train.jsonl": 1}


def test_dpo_reads_its_files_once(tmp_path, files, reads, cli):
    data, held = files
    code, _, err = cli("train", "--objective", "dpo", "--data", data, "--eval", held, "--output", tmp_path / "dpo",
                       *TINY)
    assert code == 0, err
    assert reads == {"train.jsonl": 1, "held.jsonl": 1}


def test_a_bad_row_fails_at_the_end_of_the_one_pass_before_the_run_exists(tmp_path, files, cli):
    data, _ = files
    rows = data.read_text().splitlines()
    data.write_text("\n".join(rows[:5] + ['{"prompt": "p", "chosen": "a"}'] + rows[5:]) + "\n")
    for base in ("tiny", None):
        out = tmp_path / f"rm-{base}"
        extra = ["--base", base] if base else ["--base", tmp_path / "ok"]
        if base is None:  # a saved model as the base: its pairs stream into the encoder before the error
            assert cli("train", "--data", files[1], "--output", tmp_path / "ok", *TINY)[0] == 0
        code, out_text, err = cli("train", "--data", data, "--output", out, *extra, *TINY)
        assert code == 2 and f"{data}:6: field 'rejected' missing" in err, err
        assert "train data" not in out_text and not out.exists()


def test_streamed_pairs_are_read_once(tmp_path, files):
    pairs = load.StreamedPairs(files[0])
    assert len(list(pairs)) == 64
    with pytest.raises(RuntimeError, match="stream once"):
        list(pairs)
    with pytest.raises(UserError, match="no such file"):
        load.StreamedPairs(tmp_path / "missing.jsonl")
