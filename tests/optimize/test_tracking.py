"""`rewardlab optimize ... --report-to`: the loops' metrics.jsonl numbers in tensorboard (OUTPUT/runs/NAME) at the
same steps (a resumed run's re-done steps once), best-of-n's table at step n, wandb offline when installed, and a bad
or missing tracker refused before anything exists."""

import importlib.util
import json
import time
from pathlib import Path

import pytest

from rewardlab import tracking
from tests.test_tracking import tb_scalars


def run(cli, *args) -> str:
    code, out, err = cli("optimize", *map(str, args))
    assert code == 0, err
    return out


def assert_same_numbers(out: Path, name: str) -> dict:
    """Every number of every metrics.jsonl row is the tensorboard scalar KIND/key at the row's step (float32), and
    tensorboard holds nothing else."""
    tb = tb_scalars(out / "runs" / name)
    expected: dict[str, list] = {}
    for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()):
        for tag, value in tracking.scalars(row).items():
            expected.setdefault(tag, []).append((row["step"], pytest.approx(value, rel=1e-6)))
    assert tb == expected
    return tb


def test_rloo_logs_its_metrics_to_tensorboard(setup, cli):
    pytest.importorskip("tensorboard")
    tmp, common = setup
    run(cli, "rloo", *common, "-o", tmp / "rl", "--steps", "2", "--k", "2", "--report-to", "tensorboard")
    tb = assert_same_numbers(tmp / "rl", "rloo")
    assert [s for s, _ in tb["train/loss"]] == [0, 1] and [s for s, _ in tb["eval/gold_mean"]] == [0, 2]


def test_a_resumed_loop_shows_each_step_once(setup, cli):
    pytest.importorskip("tensorboard")
    tmp, common = setup
    args = ["rloo", *common, "-o", tmp / "rl", "--k", "2", "--save-every", "1", "--report-to", "tensorboard"]
    run(cli, *args, "--steps", "1")
    time.sleep(1.1)  # as after a kill: tensorboard orders event files by the second they were made in
    run(cli, *args, "--steps", "2", "--resume")
    tb = assert_same_numbers(tmp / "rl", "rloo")  # the first run's final evaluation at step 1 is not shown twice
    assert [s for s, _ in tb["train/loss"]] == [0, 1] and [s for s, _ in tb["eval/gold_mean"]] == [0, 1, 2]


def test_bon_logs_its_table_at_step_n(setup, cli):
    pytest.importorskip("tensorboard")
    tmp, common = setup
    run(cli, "bon", *common[:-2], "-o", tmp / "bon", "--n", "4", "--max-prompts", "4", "--report-to", "tensorboard")
    table = json.loads((tmp / "bon" / "summary.json").read_text())["table"]
    tb = tb_scalars(tmp / "bon" / "runs" / "bon")
    assert tb["bon/gold"] == [(r["n"], pytest.approx(r["gold"], rel=1e-6)) for r in table]
    assert [s for s, _ in tb["bon/proxy"]] == [1, 2, 4]


@pytest.mark.parametrize("value,message", [
    ("nope", "--report-to: must be tensorboard, wandb or none, or a comma list of tensorboard and wandb; got 'nope'"),
    ("wandb", "--report-to: wandb is not installed: pip install wandb"),
])
@pytest.mark.parametrize("command", ["rloo", "bon"])
def test_a_bad_or_missing_tracker_exits_2_before_anything_exists(setup, cli, monkeypatch, command, value,
                                                                  message):
    monkeypatch.setattr(tracking, "_installed", lambda package: False)
    tmp, common = setup
    code, _, err = cli("optimize", command, *map(str, common[:-2]), "-o", tmp / "run", "--report-to", value)
    assert code == 2 and err.strip() == message
    assert not (tmp / "run").exists() and not list(tmp.glob("*.lock"))


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (not a dependency)")
def test_wandb_offline_run(setup, cli, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    tmp, common = setup
    run(cli, "rloo", *common, "-o", tmp / "rl", "--steps", "1", "--k", "2", "--report-to", "wandb")
    assert list((tmp / "rl" / "runs" / "wandb").glob("offline-run-*"))
