"""rewardlab.tracking: --report-to parsing, the refusal of a missing tracker package, tag names, and RunTracker's
tensorboard events read back (a resumed run's purge hides what a killed run logged after its checkpoint)."""

import importlib.util
import time
from pathlib import Path

import pytest

from rewardlab import tracking
from rewardlab.errors import UserError
from rewardlab.tracking import RunTracker, parse_report_to, report_to_problem, scalars


def tb_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the tensorboard event files in ``logdir``: tag -> [(step, value)] in logged order, after
    tensorboard's purge of orphaned steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("value,expected", [
    ("none", []), (None, []), ([], []), ("tensorboard", ["tensorboard"]),
    (" tensorboard , tensorboard", ["tensorboard"]), (["tensorboard"], ["tensorboard"]),
])
def test_report_to_names(value, expected):
    assert parse_report_to(value) == expected


@pytest.mark.parametrize("value", ["nope", "", "tensorboard,none", "all", ["tensorboard", "x"]])
def test_unknown_trackers_are_a_user_error_naming_the_flag(value):
    with pytest.raises(UserError, match="--report-to: must be tensorboard, wandb or none, or a comma list"):
        parse_report_to(value)


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(tracking, "_installed", lambda package: package != "tensorboard")
    assert report_to_problem("wandb,tensorboard") == "tensorboard is not installed: pip install tensorboard"
    with pytest.raises(UserError) as e:
        parse_report_to("tensorboard", flag="report_to")
    assert str(e.value) == "report_to: tensorboard is not installed: pip install tensorboard"
    assert report_to_problem("none") is None  # none needs nothing


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_is_not_a_dependency_and_is_refused_when_absent():
    assert report_to_problem("wandb") == "wandb is not installed: pip install wandb"


def test_tags_follow_hf_trainer():
    assert scalars({"step": 3, "epoch": 0, "loss": 0.5, "accuracy": 1, "note": "x", "ok": True}) == {
        "train/epoch": 0.0, "train/loss": 0.5, "train/accuracy": 1.0}
    assert scalars({"step": 3, "epoch": 1, "eval_accuracy": 0.75, "eval_loss": 0.4}) == {
        "eval/epoch": 1.0, "eval/accuracy": 0.75, "eval/loss": 0.4}
    assert scalars({"kind": "eval", "step": 2, "kl": 0.1, "time_s": 1.5}) == {"eval/kl": 0.1, "eval/time_s": 1.5}


def test_none_tracks_nothing_and_needs_no_directory(tmp_path):
    t = RunTracker("none", None, "x")
    t.log({"step": 0, "loss": 1.0})
    t.close()
    with pytest.raises(UserError, match="needs an output directory"):
        RunTracker("tensorboard", None, "x")


def test_run_tracker_writes_tensorboard_and_a_resume_purges_the_orphaned_steps(tmp_path):
    pytest.importorskip("tensorboard")
    first = RunTracker("tensorboard", tmp_path, "rloo", {"lr": 1e-3, "ns": [1, 2], "x": None})
    for step in range(4):
        first.log({"kind": "train", "step": step, "loss": float(step)})
    first.close()  # killed after step 3; the checkpoint holds 2 steps
    time.sleep(1.1)  # tensorboard reads event files in name order, whose first key is the second they were made in
    resumed = RunTracker("tensorboard", tmp_path, "rloo", purge_step=2)
    for step in (2, 3):
        resumed.log({"kind": "train", "step": step, "loss": 10.0 + step})
    resumed.close()
    assert tb_scalars(tmp_path / "runs" / "rloo") == {"train/loss": [(0, 0.0), (1, 1.0), (2, 12.0), (3, 13.0)]}
    assert list((tmp_path / "runs" / "rloo").glob("*/hparams.yml"))  # the config, as accelerate stores it
