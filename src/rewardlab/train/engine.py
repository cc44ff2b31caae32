"""One training loop for every objective: BT reward models, PRMs, DPO policies, MiCRo mixtures, the ArmoRM gate.

An :class:`Objective` says *what* is trained: its batch builder (which examples go in which micro-batch of an
epoch, an :class:`~rewardlab.train.batches.EpochPlan`) and the loss of one micro-batch, plus the metrics and eval
numbers it reports. :class:`Engine` does the rest, the same way for all, on ``accelerate`` (devices, mixed precision,
``accelerate launch`` data parallelism)::

    for each epoch e, from the resumed position:
        plan = objective.plan(e, world)                      # process r trains on plan.micro(r)
        for each optimizer step over micro-batches g_1..g_m of the plan (m ≤ grad_accum):
            1. L_j = objective.loss(model, g_j)              # forward under autocast; gradients synced on g_m only
            2. backward of L_j / m                           # the mean over the micro-batches actually in the step
            3. clip ‖∇‖ to max_grad_norm; AdamW step; schedule step (linear warm-up then decay to 0, or constant)
            4. every log_every steps: a metrics.jsonl row {step, epoch, loss, <objective's metrics>, lr[, rate]}
            5. every save_every steps: a checkpoint (model, optimizer, scheduler, RNG, data position)
        6. at the epoch's end: objective.evaluate → an eval row {epoch, step, eval_...}; a checkpoint

Every row also goes to the ``--report-to`` trackers (:class:`~rewardlab.tracking.RunTracker`). ``resume``: the newest
checkpoint of ``OUTPUT/checkpoints`` restores model, optimizer, scheduler, RNG and data position (epoch, micro-batch,
examples seen) once the run's identity matches (:func:`~rewardlab.train.rundir.check_resumable`); the rows logged
after it are dropped (:func:`drop_rows_after`) and purged from TensorBoard, since those steps are done again — to
the same weights, bit for bit. A run without an output directory (MiCRo, the ArmoRM gate) keeps nothing on disk.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import torch

from rewardlab.errors import UserError
from rewardlab.train.batches import EpochPlan
from rewardlab.train.config import TrainConfig
from rewardlab.train.rundir import Checkpointer, check_resumable


class Objective(Protocol):
    """What one kind of training plugs into :class:`Engine`. Subclass it for the defaults (no metrics, no eval)."""

    name: str  # progress label and TensorBoard run name (OUTPUT/runs/NAME)
    unit: str = "pairs"  # what the data holds: the checkpoint position counts f"{unit}_seen"
    rate_key: str | None = None  # a metrics key for examples per second (this session), or None
    shown: tuple[str, str] | None = None  # (metrics key, label) shown next to the loss on the progress bar
    eval_shown: tuple[str, str] | None = None  # (eval key, label) printed at each epoch's end

    def plan(self, epoch: int, world: int) -> EpochPlan:
        """The batch builder: epoch ``epoch``'s micro-batches for ``world`` processes, deterministic in the epoch."""
        ...

    def loss(self, model: torch.nn.Module, idx: list[int], device: torch.device) -> tuple[torch.Tensor, Any]:
        """The mean loss of micro-batch ``idx`` (with its graph; run under autocast) and what ``metrics`` needs."""
        ...

    def metrics(self, stats: list[Any]) -> dict[str, float]:
        """A step's metrics beyond its loss, from its micro-batches' ``loss`` stats."""
        return {}

    def evaluate(self, model: torch.nn.Module, accelerator: Any) -> dict[str, float] | None:
        """The eval numbers at an epoch's end (keys ``eval_*``), or None when there is nothing to evaluate."""
        return None


@dataclass(frozen=True)
class Loop:
    """How the engine trains: optimizer, schedule, precision, and what it keeps (checkpoints, rows, trackers)."""

    lr: float
    epochs: int = 1
    max_steps: int = 0  # > 0: exactly this many steps, overriding epochs
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    schedule: str = "linear"  # linear: warm-up, then linear decay to 0 | constant
    max_grad_norm: float = 0.0  # 0: no clipping
    seed: int = 0
    mixed_precision: str = "no"  # accelerate's: no | bf16 | fp16
    cpu: bool = False  # accelerate's cpu flag
    place_model: bool = True  # False: the model trains where it is (not wrapped for data parallelism)
    log_every: int = 10
    save_every: int = 0  # 0: checkpoints at epoch ends only
    keep_checkpoints: int = 2
    report_to: str | list[str] = "none"
    hparams: dict[str, Any] = field(default_factory=dict)  # the config, for the trackers

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Loop:
        """The loop of a ``rewardlab train`` config (BT, PRM, DPO); refuses a precision this machine lacks."""
        mp, cpu = precision_and_cpu(cfg)
        return cls(lr=cfg.resolved_lr(), epochs=cfg.epochs, max_steps=cfg.max_steps, grad_accum=cfg.grad_accum,
                   weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, max_grad_norm=cfg.max_grad_norm,
                   seed=cfg.seed, mixed_precision=mp, cpu=cpu, log_every=cfg.log_every, save_every=cfg.save_every,
                   keep_checkpoints=cfg.keep_checkpoints, report_to=cfg.report_to, hparams=cfg.to_dict())

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.max_steps if self.max_steps > 0 else self.epochs * steps_per_epoch

    def lr_lambda(self, total: int) -> Callable[[int], float]:
        return linear_schedule(total, int(self.warmup_ratio * total)) if self.schedule == "linear" else _constant


@dataclass
class Position:
    """Where a run is: optimizer steps done, the epoch, the next micro-batch of it, examples trained on."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    seen: int = 0


@dataclass
class Result:
    """What :meth:`Engine.fit` did. ``final``: the last eval row ({} without eval); ``epoch_losses``: the mean training
    loss of each epoch this session finished, weighted by examples (over the steps this session ran)."""

    step: int
    epoch: int
    seen: int
    world: int
    final: dict[str, Any]
    epoch_losses: list[float]


class Engine:
    """The loop of the module docstring. Created before the model is set up, so that ``accelerator`` (device,
    autocast) serves the objective's preparations; :meth:`fit` then trains."""

    def __init__(self, loop: Loop, name: str, output: Path | None = None, resume: bool = False,
                 progress: bool = True):
        from rewardlab.tracking import RunTracker

        self.loop, self.name, self.output, self.progress = loop, name, output, progress
        self.accelerator = make_accelerator(loop.mixed_precision, loop.cpu)
        self.checkpointer = Checkpointer(output, loop.keep_checkpoints) if output is not None else None
        self.last = self.checkpointer.latest() if self.checkpointer and resume else None
        purge = int(self.last.name.removeprefix("step-")) + 1 if self.last else None  # steps redone: hide the old
        main = self.accelerator.is_main_process and output is not None
        self.tracker = RunTracker(loop.report_to if main else "none", output, name, loop.hparams, purge)
        self.log: TextIO | None = None  # metrics.jsonl, open while fit runs (main process)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def fit(self, objective: Objective, model: torch.nn.Module, identity: dict[str, Any] | None = None) -> Result:
        """Train ``model`` in place on ``objective`` (see the module docstring); ``identity``: the run's
        (:func:`~rewardlab.train.rundir.run_identity`), stored in checkpoints and checked on resume."""
        acc, loop = self.accelerator, self.loop
        world, rank = acc.num_processes, acc.process_index
        total = loop.total_steps(math.ceil(len(objective.plan(0, world).rounds) / loop.grad_accum))
        torch.manual_seed(loop.seed)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=loop.lr,
                                      weight_decay=loop.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, loop.lr_lambda(total))
        if loop.place_model:
            model, optimizer = acc.prepare(model, optimizer)
        else:
            optimizer = acc.prepare(optimizer)
        raw = acc.unwrap_model(model)
        device = acc.device if loop.place_model else next(raw.parameters()).device
        pos = self._restore(objective, raw, optimizer, scheduler, identity, total)

        def save(p: Position) -> None:
            if self.checkpointer is not None and acc.is_main_process:
                state = {"step": p.step, "epoch": p.epoch, "batch": p.batch, f"{objective.unit}_seen": p.seen,
                         "run": identity}
                self.checkpointer.save(p.step, raw, optimizer, scheduler, state)

        self.log = (self.output / "metrics.jsonl").open("a") if self.output and acc.is_main_process else None
        final: dict[str, Any] = {}
        epoch_losses, epoch_loss, epoch_seen = [], 0.0, 0
        bar = self._progress_bar(objective)
        model.train()
        with bar:
            task = bar.add_task(objective.name, total=total, completed=pos.step, info="")
            t0, session = time.perf_counter(), 0
            while pos.step < total:
                plan = objective.plan(pos.epoch, world)
                micro = plan.micro(rank)
                while pos.batch < len(micro) and pos.step < total:
                    group = micro[pos.batch : pos.batch + loop.grad_accum]
                    loss, stats = accumulate(model, objective, group, acc, device)  # 1, 2
                    self._update(model, optimizer, scheduler)  # 3
                    seen = plan.pairs(pos.batch, pos.batch + len(group))
                    pos.batch, pos.step, pos.seen = pos.batch + len(group), pos.step + 1, pos.seen + seen
                    session, epoch_loss, epoch_seen = session + seen, epoch_loss + loss * seen, epoch_seen + seen
                    row = {"step": pos.step, "epoch": pos.epoch, "loss": loss, **objective.metrics(stats),
                           "lr": scheduler.get_last_lr()[0]}
                    if objective.rate_key:
                        row[objective.rate_key] = session / max(1e-9, time.perf_counter() - t0)
                    bar.update(task, completed=pos.step, info=_describe(objective, row))
                    if pos.step % loop.log_every == 0 or pos.step == total:  # 4
                        self._log(row)
                    if loop.save_every and pos.step % loop.save_every == 0:  # 5
                        save(pos)
                done = pos.batch >= len(micro)  # the epoch is complete (else max_steps stopped it part-way)
                if acc.is_main_process:  # 6
                    final = self._evaluate(objective, raw, pos, bar.console.print) or final
                save(Position(pos.step, pos.epoch + 1, 0, pos.seen) if done else pos)
                acc.wait_for_everyone()
                if done:
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                    epoch_losses.append(epoch_loss / max(1, epoch_seen))
                    epoch_loss, epoch_seen = 0.0, 0
        if not final and acc.is_main_process:  # resumed at the end already: still report the eval numbers
            final = self._evaluate(objective, raw, pos, None)
        if self.log:
            self.log.close()
        self.tracker.close()
        return Result(pos.step, pos.epoch, pos.seen, world, final, epoch_losses)

    def _evaluate(self, objective: Objective, raw: torch.nn.Module, pos: Position,
                  say: Callable[[str], None] | None) -> dict[str, Any]:
        """The eval row of the epoch that ends at ``pos`` ({} without eval), logged when ``say`` is given."""
        metrics = objective.evaluate(raw, self.accelerator)
        if metrics is None:
            return {}
        row = {"epoch": pos.epoch, "step": pos.step, **metrics}
        if say is not None:
            self._log(row)
            if objective.eval_shown:
                say(f"epoch {pos.epoch}: {objective.eval_shown[1]} {row[objective.eval_shown[0]]:.3f}")
        return row

    def _restore(self, objective: Objective, raw: torch.nn.Module, optimizer, scheduler,
                 identity: dict[str, Any] | None, total: int) -> Position:
        if self.last is None:
            return Position()
        check_resumable(self.last, identity or {})
        state = Checkpointer.restore(self.last, raw, optimizer, scheduler)
        pos = Position(state["step"], state["epoch"], state["batch"], state.get(f"{objective.unit}_seen", 0))
        self.accelerator.print(f"resumed from {self.last} (step {pos.step} of {total})")
        if self.accelerator.is_main_process and self.output is not None:
            drop_rows_after(self.output / "metrics.jsonl", pos.step)
        return pos

    def _update(self, model: torch.nn.Module, optimizer, scheduler) -> None:
        if self.loop.max_grad_norm:
            self.accelerator.clip_grad_norm_(model.parameters(), self.loop.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    def _log(self, row: dict[str, Any]) -> None:
        if self.log is None:
            return
        self.log.write(json.dumps(row) + "\n")
        self.log.flush()
        self.tracker.log(row)

    def _progress_bar(self, objective: Objective):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(TextColumn(f"[bold]{objective.name}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                        disable=not (self.progress and self.accelerator.is_main_process))


def _describe(objective: Objective, row: dict[str, Any]) -> str:
    info = f"loss {row['loss']:.3f}"
    return info + f" {objective.shown[1]} {row[objective.shown[0]]:.2f}" if objective.shown else info


def accumulate(model: torch.nn.Module, objective: Objective, group: list[list[int]], accelerator,
               device: torch.device | None = None) -> tuple[float, list[Any]]:
    """Forward and backward the micro-batches of one optimizer step; gradients are synced on the last only.

    Each micro-batch loss is divided by ``len(group)``, the number of micro-batches actually in this step, so the
    gradient is their mean also for an epoch's last, partial step. Returns (mean loss, each micro-batch's stats).
    """
    device = device if device is not None else accelerator.device
    loss_sum, stats = 0.0, []
    for j, idx in enumerate(group):
        sync = j == len(group) - 1
        with accelerator.no_sync(model) if not sync else nullcontext():
            with accelerator.autocast():
                loss, s = objective.loss(model, idx, device)
            accelerator.backward(loss / len(group))
        loss_sum += loss.item() / len(group)
        stats.append(s)
    return loss_sum, stats


def linear_schedule(total_steps: int, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor of step s: linear warm-up over ``warmup`` steps, then linear decay to 0."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return f


def _constant(step: int) -> float:
    return 1.0


def precision_and_cpu(cfg: TrainConfig) -> tuple[str, bool]:
    """accelerate's ``(mixed_precision, cpu)`` for ``cfg.device`` (auto: accelerate's choice; cpu: forced) and
    ``cfg.mixed_precision`` (auto: bf16 on a GPU that supports it, else fp32; fp16 needs CUDA). Raises UserError
    for what this machine cannot do, so it is called before any work."""
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise UserError("--device cuda: no CUDA device is available on this machine (use --device cpu or auto)")
    on_gpu = cuda and cfg.device != "cpu"
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"
    if mp == "fp16" and not on_gpu:
        raise UserError("--mixed-precision fp16 needs a CUDA device (use bf16 or no)")
    return mp, use_cpu(cfg)


def use_cpu(cfg: TrainConfig) -> bool:
    """accelerate's ``cpu`` flag: forced by ``device: cpu``; with ``auto``, set when there is no GPU (CUDA or MPS),
    which also makes ``accelerate launch`` run multi-process DDP on CPUs over gloo."""
    if cfg.device != "auto":
        return cfg.device == "cpu"
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def make_accelerator(mixed_precision: str | TrainConfig = "no", cpu: bool = False):
    """An Accelerator in ``mixed_precision`` (or for a config: :func:`precision_and_cpu`). accelerate keeps one state
    per process; in a single process (not ``accelerate launch``-ed) each run starts it afresh, so that an earlier run
    in the process (another precision or device) does not decide this one's."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if isinstance(mixed_precision, TrainConfig):
        mixed_precision, cpu = precision_and_cpu(mixed_precision)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and PartialState._shared_state.get("num_processes", 1) <= 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def drop_rows_after(path: Path, step: int) -> None:
    """Rows of ``metrics.jsonl`` logged after the checkpoint a run resumes from are logged again as the steps are
    recomputed: drop them first, so every step appears once."""
    if not path.exists():
        return
    from rewardlab.io import write_jsonl_atomic

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if any(r.get("step", 0) > step for r in rows):
        write_jsonl_atomic(path, [r for r in rows if r.get("step", 0) <= step])
