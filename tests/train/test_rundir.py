"""`rewardlab train` checks its output before any work, never mixes two runs, and leaves nothing behind on a refusal."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.errors import UserError

CLI = [sys.executable, "-m", "rewardlab.cli"]
FAST = ["--batch-size", "8", "--max-length", "32", "--seed", "0"]


@pytest.fixture
def data_file(tmp_path, pair_rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    return path


def train(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def refused(res, *needles: str) -> str:
    assert isinstance(res.exception, UserError), (res.output, res.exception)
    text = "\n".join(res.exception.lines())
    for n in needles:
        assert n in text, text
    return text


def test_fresh_run_into_a_used_directory_is_refused_and_overwrite_clears_it(tmp_path, data_file):
    out = tmp_path / "rm"
    assert train("--data", str(data_file), "--output", str(out), "--max-steps", "2", *FAST).exit_code == 0
    metrics = (out / "metrics.jsonl").read_text()
    res = train("--data", str(data_file), "--output", str(out), "--max-steps", "3", *FAST)
    refused(res, "already holds a run", "--resume", "--overwrite", "--output")
    assert (out / "metrics.jsonl").read_text() == metrics  # nothing appended
    res = train("--data", str(data_file), "--output", str(out), "--max-steps", "3", "--overwrite", *FAST)
    assert res.exit_code == 0, (res.output, res.exception)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3]  # only the new run's log (log_every 10: the last step)
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000003"]


def test_resume_needs_a_checkpoint_and_the_same_run(tmp_path, data_file, pair_rows):
    out = tmp_path / "rm"
    refused(train("--data", str(data_file), "--output", str(out), "--resume", *FAST), "no checkpoint")
    assert not out.exists()
    assert train("--data", str(data_file), "--output", str(out), "--max-steps", "2", *FAST).exit_code == 0
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:40]))
    refused(train("--data", str(other), "--output", str(out), "--max-steps", "4", "--resume", *FAST),
            "cannot resume: data_hash")
    refused(train("--data", str(data_file), "--output", str(out), "--max-steps", "4", "--resume", "--batch-size",
                  "4"), "cannot resume: batch_size was 8, now 4")
    refused(train("--data", str(data_file), "--output", str(out), "--resume", "--overwrite", *FAST), "exclude")


def test_output_that_is_a_file_exits_2_before_loading_anything(tmp_path, data_file):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    # a --base that does not exist: if the model were loaded first, the error would be about it
    proc = subprocess.run(CLI + ["train", "--data", str(data_file), "--output", str(target), "--base",
                                 str(tmp_path / "no-such-model")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"--output {target}: is a file, expected a directory"]
    refused(train("--data", str(data_file), "--output", str(target / "sub")), "which is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only directory")
def test_read_only_output_exits_2(tmp_path, data_file):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        refused(train("--data", str(data_file), "--output", str(ro / "rm")), "not writable")
    finally:
        ro.chmod(0o700)


def test_no_usable_pairs_exits_2_and_leaves_nothing_behind(tmp_path):
    # every pair shares its first 40 words: cut at 16 tokens, chosen and rejected are identical (ties, dropped)
    shared = " ".join(["the cat sat on the mat"] * 8)
    rows = [{"prompt": "", "chosen": f"{shared} good {i}", "rejected": f"{shared} bad {i}"} for i in range(20)]
    data = tmp_path / "ties.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rm"
    proc = subprocess.run(CLI + ["train", "--data", str(data), "--output", str(out), "--max-length", "16"],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert f"{data}:1: 0 usable training pairs" in proc.stderr and "Traceback" not in proc.stderr
    assert "20 tied after truncation" in proc.stdout
    assert not out.exists()


def test_skipped_report_lands_in_the_output_only_once_it_exists(tmp_path, pair_rows):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:20]) + '{"prompt": "x"}\n')
    out = tmp_path / "rm"
    res = train("--data", str(data), "--output", str(out), "--max-steps", "1", "--skip-invalid", *FAST)
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"{data}:21:" in (out / "skipped.txt").read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    refused(train("--data", str(bad), "--output", str(tmp_path / "rm2"), "--skip-invalid", *FAST), "no valid rows")
    assert not (tmp_path / "rm2").exists()
