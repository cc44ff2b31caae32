"""The run directory of ``rewardlab train``: checked before any work, never mixed between two runs.

- The path must be usable as a directory (not a file, writable): :func:`rewardlab.io.check_output_dir`.
- A directory that already holds a run (``metrics.jsonl``, ``checkpoints/``, ``run.json`` or a saved model) is
  refused for a fresh run: appending to its metrics or later resuming the *old* run's checkpoint would mix two runs.
  ``--resume`` continues it (it must have a checkpoint), ``--overwrite`` deletes its contents first (only once the
  inputs are known to be valid), or choose a new ``--output``.
- A checkpoint records the identity of its run (:func:`run_identity`: data hash, batch geometry, seed, ...);
  resuming with a different one is refused, since the saved data position would then point into other batches.

The checks create nothing; :func:`clear_run` deletes, and only when asked to. :class:`Checkpointer` writes
``checkpoints/step-N/``: model, optimizer, scheduler and RNG states (pickle-free), and the data position.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rewardlab.errors import UserError
from rewardlab.io import check_output_dir, save_safetensors
from rewardlab.train.state import load_state, rng_state, save_state, set_rng_state

RUN_MARKERS = ("metrics.jsonl", "checkpoints", "run.json", "rewardlab.json", "rewardlab_dpo.json",
               "model.safetensors")
IDENTITY = ("data_hash", "base", "batch_size", "grad_accum", "bucket", "seed", "max_length", "overlong", "drop_ties",
            "world_size")


def used_markers(output: Path) -> list[str]:
    """The run files already present in ``output`` (empty: a fresh or non-existent directory)."""
    return [m for m in RUN_MARKERS if (output / m).exists()] if output.is_dir() else []


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` (zero-padded, so names sort by step)."""
    d = output / "checkpoints"
    done = sorted(d.glob("step-*[0-9]")) if d.is_dir() else []
    return done[-1] if done else None


def check_run_output(output: str | os.PathLike, resume: bool, overwrite: bool, flag: str = "--output") -> Path:
    """Validate ``output`` for a run before any work (see the module docstring); creates and deletes nothing."""
    output = check_output_dir(output, flag)
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other: resume the run in "
                        f"{output} or overwrite it, not both")
    used = used_markers(output)
    if resume:
        if latest_checkpoint(output) is None:
            raise UserError(f"{flag} {output}: --resume given but there is no checkpoint to resume "
                            "(checkpoints/step-*); drop --resume, adding --overwrite if the directory holds a run")
        return output
    if used and not overwrite:
        raise UserError(f"{flag} {output}: already holds a run ({', '.join(used)}); pass --resume to continue it, "
                        f"--overwrite to delete it and start again, or choose a new {flag}")
    if used and overwrite and output.resolve() in (Path.cwd().resolve(), Path.home().resolve(), Path("/")):
        raise UserError(f"{flag} {output}: --overwrite would delete the current, home or root directory; "
                        "give the run its own directory")
    return output


def clear_run(output: Path) -> None:
    """Delete the contents of a used run directory (``--overwrite``); a directory without a run is left alone."""
    if not used_markers(output):
        return
    for entry in output.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def run_identity(cfg, data_hash: str, world_size: int) -> dict[str, Any]:
    """What a checkpoint's data position depends on; stored in every checkpoint, compared on resume."""
    values = {k: getattr(cfg, k) for k in IDENTITY if hasattr(cfg, k)}
    return {**values, "data_hash": data_hash, "world_size": world_size}


def check_resumable(checkpoint: Path, identity: dict[str, Any]) -> None:
    """Refuse to resume ``checkpoint`` with a run whose identity differs (a checkpoint without one is accepted)."""
    saved = json.loads((checkpoint / "trainer_state.json").read_text()).get("run")
    if not saved:
        return
    diff = [f"{k} was {saved[k]!r}, now {identity.get(k)!r}" for k in saved if saved[k] != identity.get(k)]
    if diff:
        raise UserError(*[f"{checkpoint}/trainer_state.json:1: cannot resume: {d}" for d in diff],
                        "resume with the run's own data and options, or start a new run (--overwrite or a new "
                        "--output)")


class Checkpointer:
    """Writes ``checkpoints/step-N/`` atomically (temp dir + rename) and keeps the last ``keep``."""

    def __init__(self, output: Path, keep: int):
        self.output = output
        self.dir = output / "checkpoints"
        self.keep = keep

    def latest(self) -> Path | None:
        return latest_checkpoint(self.output)

    def save(self, step: int, model: torch.nn.Module, optimizer, scheduler, position: dict[str, Any]) -> None:
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f".tmp-step-{step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            save_safetensors({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
                             tmp / "model.safetensors")
            save_state(tmp, "optimizer", optimizer.state_dict())
            save_state(tmp, "rng", rng_state())
            (tmp / "trainer_state.json").write_text(json.dumps({**position, "scheduler": scheduler.state_dict()}))
        except BaseException:  # a full disk, a kill: no half checkpoint left; the previous one stays the latest
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(self.dir.glob("step-*[0-9]"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def restore(path: Path, model: torch.nn.Module, optimizer, scheduler) -> dict[str, Any]:
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        optimizer.load_state_dict(load_state(path, "optimizer"))
        state = json.loads((path / "trainer_state.json").read_text())
        scheduler.load_state_dict(state.pop("scheduler"))
        set_rng_state(load_state(path, "rng"))
        return state
