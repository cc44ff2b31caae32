"""``rewardlab train`` once its options are loaded (:func:`rewardlab.train.options.load_options`): check and lock the
output, read the data and train the objective's model: :func:`run_training`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainResult:
    objective: str  # bt | dpo | prm | armo
    output: str  # the run directory
    summary: dict[str, Any] = field(default_factory=dict)  # the trainer's (no "metrics": not the main process)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_training(opts: Any, *, config: Path | None = None, resume: bool = False, overwrite: bool = False,
                 log: Callable[[str], None] = _stderr) -> TrainResult:
    """Train what ``opts`` (an :class:`~rewardlab.train.options.Options`) describes. The output directory is checked
    before any data is read (a previous run there needs ``resume`` or ``overwrite``; it must not be an input, the
    ``config`` file included) and locked against a second writer. ``log`` gets the warnings."""
    from rewardlab.errors import UserError

    run, cfg, objective = opts.run, opts.cfg, opts.objective
    if run.data is None:
        raise UserError("--data is required (or set 'data' in --config)")
    if "output" not in opts.origin:
        raise UserError("--output is required (or set 'output' in --config)")
    data, eval_data = Path(run.data), Path(run.eval) if run.eval else None
    split, eval_split = run.split, run.eval_split
    same_dir = eval_data is not None and data.is_dir() and data.resolve() == eval_data.resolve()
    if same_dir and eval_split is None:
        log(f"warning: --eval {eval_data} is --data with the same split: the eval accuracy is measured on training "
            "rows (choose a held-out split with --eval-split)")
    eval_split = eval_split or split
    if objective == "armo":
        return TrainResult(objective, str(cfg.output), _train_armo(cfg, data, eval_data, split, eval_split, config,
                                                                   resume))
    return TrainResult(objective, str(cfg.output), _train_run(objective, cfg, data, eval_data, split, eval_split,
                                                              run.skip_invalid, config, resume, overwrite))


def _train_armo(cfg: Any, data: Path, eval_data: Path | None, split: str | None, eval_split: str | None,
                config: Path | None, resume: bool) -> dict[str, Any]:
    """ArmoRM heads and gate on a frozen backbone, written to a new ``cfg.output`` (no run directory, no resume)."""
    from rewardlab.data.load import load_pairs, load_rated
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_dir, output_lock
    from rewardlab.train.multiobjective import train_armo

    if cfg.rated is None:
        raise UserError("--objective armo needs --rated FILE (or 'rated' in --config)")
    if resume:
        raise UserError("--resume is not supported for --objective armo (it trains in seconds)")
    out, rated = Path(cfg.output), Path(cfg.rated)
    check_output_dir(out)
    check_not_an_input(out, {"--data": data, "--eval": eval_data, "--rated": rated, "--base": cfg.base,
                             "--config": config})
    with output_lock(out):
        return train_armo(load_rated(rated, split=split), load_pairs(data, split=split), cfg,
                          eval_pairs=load_pairs(eval_data, split=eval_split) if eval_data else None)


def _train_run(objective: str, cfg: Any, data: Path, eval_data: Path | None, split: str | None,
               eval_split: str | None, skip_invalid: bool, config: Path | None, resume: bool,
               overwrite: bool) -> dict[str, Any]:
    """A BT reward model, a DPO policy or a PRM in a run directory (checkpoints, metrics.jsonl, skipped.txt)."""
    import shutil
    import tempfile

    from rewardlab.data.load import StreamedPairs
    from rewardlab.io import check_not_an_input, output_lock
    from rewardlab.train.rundir import check_run_output

    out = check_run_output(cfg.output, resume=resume, overwrite=overwrite)  # before reading any data
    check_not_an_input(out, {"--data": data, "--eval": eval_data, "--config": config, "--base": cfg.base,
                             "--reference": getattr(cfg, "reference", None), "--chat-template": cfg.chat_template},
                       contains=overwrite)  # --overwrite deletes the run directory's contents
    with output_lock(out):  # one writer: a second run would interleave its rows in metrics.jsonl
        if objective == "prm":
            from rewardlab.train.prm import train_prm_command

            return train_prm_command(data, eval_data, cfg, split=split, resume=resume, overwrite=overwrite,
                                     skip_invalid=skip_invalid, eval_split=eval_split)
        tmp = Path(tempfile.mkdtemp(prefix="rewardlab-skipped-"))  # moved into the output once that exists
        try:
            pairs = StreamedPairs(data, split, skip_invalid, tmp / "skipped.txt")
            eval_pairs = StreamedPairs(eval_data, eval_split) if eval_data else None
            if objective == "dpo":
                from rewardlab.train.dpo import train_dpo

                summary = train_dpo(pairs, cfg, eval_pairs, overwrite=overwrite, origin=str(data), resume=resume)
                if (tmp / "skipped.txt").exists():
                    shutil.move(tmp / "skipped.txt", out / "skipped.txt")
                return summary
            from rewardlab.train.trainer import train_reward_model

            return train_reward_model(pairs, cfg, eval_pairs, resume=resume, overwrite=overwrite,
                                      skipped_report=tmp / "skipped.txt", origin=str(data))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
