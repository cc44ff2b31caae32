"""`rewardlab train --report-to`: the metrics.jsonl numbers in tensorboard (OUTPUT/runs/OBJECTIVE) at the same
steps, a resumed run's re-done steps once, and every bad value refused before anything exists."""

import json
import shutil
import time
from pathlib import Path

import pytest

from rewardlab import tracking
from rewardlab.train.options import load_options, render_config
from tests.test_tracking import tb_scalars
from tests.train.test_prm import step_rows

TINY_YAML = "tiny_layers: 1\ntiny_embd: 32\ntiny_vocab: 128\nbatch_size: 8\nlog_every: 1\nlr: 3.0e-3\n"


@pytest.fixture
def data(tmp_path, pair_rows) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    return path


@pytest.fixture
def tiny(tmp_path) -> list:
    """A small model logging every step: --config FILE."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return ["--config", path, "--max-length", "64"]


def rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_numbers(run: Path, logdir: str) -> dict:
    """Every number of every metrics.jsonl row is the tensorboard scalar of its tag at the row's step (float32),
    and tensorboard holds nothing else."""
    tb = tb_scalars(run / "runs" / logdir)
    expected: dict[str, list] = {}
    for row in rows(run):
        for tag, value in tracking.scalars(row).items():
            expected.setdefault(tag, []).append((row["step"], pytest.approx(value, rel=1e-6)))
    assert tb == expected
    return tb


def test_bt_run_logs_its_metrics_to_tensorboard(tmp_path, data, tiny, cli):
    pytest.importorskip("tensorboard")
    run = tmp_path / "rm"
    code, _, err = cli("train", "--data", data, "--eval", data, "--output", run, "--epochs", "2", *tiny,
                       "--report-to", "tensorboard")
    assert code == 0, err
    tb = assert_same_numbers(run, "bt")
    assert [s for s, _ in tb["train/loss"]] == list(range(1, 17))  # 64 pairs / 8, two epochs
    assert [s for s, _ in tb["eval/accuracy"]] == [8, 16]
    assert "train/lr" in tb and "eval/loss" in tb


def test_a_resumed_bt_run_shows_each_step_once(tmp_path, data, tiny, cli):
    pytest.importorskip("tensorboard")
    run = tmp_path / "rm"
    args = ["train", "--data", data, "--output", run, "--max-steps", "5", "--save-every", "3", *tiny,
            "--report-to", "tensorboard"]
    assert cli(*args)[0] == 0
    for ckpt in (run / "checkpoints").glob("step-*5"):  # killed after logging step 5, before its checkpoint
        shutil.rmtree(ckpt)
    time.sleep(1.1)  # as after a kill: tensorboard orders event files by the second they were made in
    code, _, err = cli(*args, "--resume")
    assert code == 0, err
    tb = assert_same_numbers(run, "bt")  # steps 4 and 5 of the first run are purged, not shown twice
    assert [s for s, _ in tb["train/loss"]] == [1, 2, 3, 4, 5]


def test_dpo_and_prm_runs_log_too(tmp_path, data, tiny, cli):
    pytest.importorskip("tensorboard")
    code, _, err = cli("train", "--objective", "dpo", "--data", data, "--eval", data, "--output", tmp_path / "dpo",
                       "--max-steps", "3", *tiny, "--report-to", "tensorboard")
    assert code == 0, err
    assert "eval/accuracy" in assert_same_numbers(tmp_path / "dpo", "dpo")
    steps = tmp_path / "steps.jsonl"
    steps.write_text("".join(json.dumps(r) + "\n" for r in step_rows(16)))
    code, _, err = cli("train", "--objective", "prm", "--data", steps, "--output", tmp_path / "prm",
                       "--max-steps", "2", *tiny, "--report-to", "tensorboard")
    assert code == 0, err
    assert [s for s, _ in assert_same_numbers(tmp_path / "prm", "prm")["train/step_accuracy"]] == [1, 2]


def assert_nothing_made(tmp_path: Path) -> None:
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("*.lock"))


@pytest.mark.parametrize("value,message", [
    ("nope", "--report-to: must be tensorboard, wandb or none, or a comma list of tensorboard and wandb; got 'nope'"),
    ("tensorboard,wandb", "--report-to: tensorboard, wandb is not installed: pip install tensorboard wandb"),
])
def test_a_bad_or_missing_tracker_exits_2_before_anything_exists(tmp_path, data, cli, monkeypatch, value, message):
    monkeypatch.setattr(tracking, "_installed", lambda package: False)
    code, out, err = cli("train", "--data", data, "--output", tmp_path / "run", "--report-to", value)
    assert code == 2 and err.strip() == message and "train data" not in out
    assert_nothing_made(tmp_path)


def test_armo_has_no_metrics_to_report(tmp_path, data, cli):
    code, _, err = cli("train", "--objective", "armo", "--data", data, "--output", tmp_path / "run",
                       "--report-to", "tensorboard")
    assert code == 2 and "--report-to: does not apply to --objective armo (only to bt, dpo, prm)" in err


@pytest.mark.parametrize("yaml_value,error", [
    ("5", "expected a string or a list of strings, got 5"),
    ("[tensorboard, 3]", 'expected a string or a list of strings, got ["tensorboard", 3]'),
    ("null", "expected a string or a list of strings, got null"),
    ("tensorbord", "must be tensorboard, wandb or none, or a comma list of tensorboard and wandb; got 'tensorbord'"),
])
def test_the_yaml_key_is_type_checked(tmp_path, data, cli, yaml_value, error):
    cfg = tmp_path / "rm.yaml"
    cfg.write_text(f"report_to: {yaml_value}\n")
    code, _, err = cli("train", "--data", data, "--output", tmp_path / "run", "--config", cfg)
    assert code == 2 and err.strip() == f"{cfg}: report_to: {error}"
    assert_nothing_made(tmp_path)


def test_the_yaml_key_takes_a_list_or_a_comma_list_and_is_documented(tmp_path):
    pytest.importorskip("tensorboard")
    for text, value in (("report_to: [tensorboard]\n", ["tensorboard"]), ("report_to: tensorboard\n", "tensorboard")):
        (tmp_path / "rm.yaml").write_text(text)
        assert load_options(tmp_path / "rm.yaml", {}).cfg.report_to == value
    for objective in ("bt", "dpo", "prm"):
        shown = render_config(objective).splitlines()
        i = shown.index("report_to: none")
        assert "tensorboard (OUTPUT/runs/) and/or wandb" in shown[i - 1]
