"""Experiment tracking, as TRL's ``report_to``: ``--report-to tensorboard|wandb|none`` (or a comma list) sends the
scalars of a run's ``metrics.jsonl`` also to TensorBoard and/or Weights & Biases, through accelerate's tracker
classes (``accelerate.tracking``) — handed to an ``Accelerator(log_with=...)`` by the trainers, driven by
:class:`RunTracker` in loops without one (``rewardlab optimize``, DPO training).

- Where: TensorBoard event files in ``OUTPUT/runs/NAME`` (``tensorboard --logdir OUTPUT/runs``); wandb's local files in
  ``OUTPUT/runs/wandb``, project ``$WANDB_PROJECT`` (default ``rewardlab``), run name the output directory's name.
- What: every number of a metrics row at its ``step``, tagged as HF Trainer does (:func:`scalars`): ``train/loss``,
  ``eval/accuracy`` (a row's ``eval_`` prefix or its ``kind`` picks the section).
- A resumed run passes ``purge_step``: TensorBoard hides the events a killed run logged after its checkpoint, as
  ``metrics.jsonl`` drops those rows (it reads a directory's event files in name order, whose first key is the second
  each was created in: a resume started within the killed run's first second could be read first).
- The trackers are optional packages: :func:`report_to_problem` names a missing one (``pip install tensorboard``)
  so that the commands refuse it before any work; accelerate itself would silently log nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rewardlab.errors import UserError

TRACKERS = ("tensorboard", "wandb")  # each is also the package to install
HELP = ("Also log the metrics.jsonl scalars to tensorboard (OUTPUT/runs/) and/or wandb: tensorboard | wandb | none, "
        "or a comma list (as TRL's report_to).")
ReportTo = str | Sequence[str] | None


def _names(value: ReportTo) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value or ["none"])
    return [str(p).strip() for p in parts]


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def report_to_problem(value: ReportTo) -> str | None:
    """Why ``value`` (``"tensorboard,wandb"``, a list of names, ``"none"``) cannot be tracked here: an unknown name
    or a tracker whose package is not installed; None when it can."""
    names = _names(value)
    if names == ["none"]:
        return None
    bad = [n for n in names if n not in TRACKERS]
    if bad or not names:
        return (f"must be {', '.join(TRACKERS)} or none, or a comma list of {' and '.join(TRACKERS)}; "
                f"got {', '.join(map(repr, bad or names))}")
    missing = [n for n in dict.fromkeys(names) if not _installed(n)]
    if missing:
        return f"{', '.join(missing)} is not installed: pip install {' '.join(missing)}"
    return None


def parse_report_to(value: ReportTo, flag: str = "--report-to") -> list[str]:
    """The trackers of ``value`` (empty for none), each once; UserError (exit 2) naming ``flag`` when an unknown
    name or a missing package makes it unusable (see :func:`report_to_problem`)."""
    problem = report_to_problem(value)
    if problem:
        raise UserError(f"{flag}: {problem}")
    names = _names(value)
    return [] if names == ["none"] else list(dict.fromkeys(names))


def make_trackers(value: ReportTo, output: str | os.PathLike, name: str, purge_step: int | None = None) -> list:
    """accelerate trackers for ``value``, writing under ``output/runs`` (see the module docstring); ``name`` names
    the TensorBoard run (``runs/NAME``) and the wandb job type. Nothing is written until they are started
    (``Accelerator.init_trackers`` or :class:`RunTracker`)."""
    names = parse_report_to(value)
    if not names:
        return []
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    logdir = Path(output) / "runs"
    trackers: list = []
    for n in names:
        if n == "tensorboard":
            trackers.append(TensorBoardTracker(name, logdir, **({} if purge_step is None else
                                                                {"purge_step": purge_step})))
        else:
            logdir.mkdir(parents=True, exist_ok=True)  # wandb.init(dir=...) needs it to exist
            trackers.append(WandBTracker(os.environ.get("WANDB_PROJECT", "rewardlab"), name=Path(output).name,
                                         job_type=name, dir=str(logdir)))
    return trackers


def hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the value types TensorBoard's hparams accept (bool, int, float, str): others as JSON."""
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in config.items()}


def scalars(row: Mapping[str, Any], kind: str | None = None) -> dict[str, float]:
    """The numbers of a metrics row as tracker tags: ``KIND/key`` (``kind``, else the row's ``kind``), else HF
    Trainer's names — ``eval/x`` for every key of a row holding ``eval_x`` keys, ``train/x`` otherwise."""
    kind = kind or row.get("kind")
    if kind is None:
        kind = "eval" if any(str(k).startswith("eval_") for k in row) else "train"
    return {f"{kind}/{str(k).removeprefix('eval_') if kind == 'eval' else k}": float(v) for k, v in row.items()
            if k not in ("step", "kind") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class RunTracker:
    """The trackers of one run without an Accelerator: started (directories, config) on the first :meth:`log`,
    flushed by every log (TensorBoard), closed by :meth:`close`. ``value`` none: every call does nothing."""

    def __init__(self, value: ReportTo, output: str | os.PathLike | None, name: str,
                 config: Mapping[str, Any] | None = None, purge_step: int | None = None):
        self.names = parse_report_to(value)
        if self.names and output is None:
            raise UserError(f"report_to {','.join(self.names)}: the run needs an output directory to track into")
        self.output, self.name, self.config, self.purge_step = output, name, dict(config or {}), purge_step
        self.trackers: list | None = None

    def log(self, row: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numbers of ``row`` (:func:`scalars`) at ``step`` (default: the row's ``step``)."""
        if not self.names:
            return
        if self.trackers is None:
            from accelerate import PartialState

            PartialState(cpu=True)  # the trackers ask it for the main process; cpu: it claims no GPU
            self.trackers = make_trackers(self.names, self.output, self.name, self.purge_step)
            for t in self.trackers:
                t.start()
                t.store_init_configuration(hparams(self.config))
        values = scalars(row)
        for t in self.trackers:
            t.log(values, step=row["step"] if step is None else step)

    def close(self) -> None:
        for t in self.trackers or []:
            t.finish()
        self.trackers = None
