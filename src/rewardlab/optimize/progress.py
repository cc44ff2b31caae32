"""The progress every optimize command shows on stderr, written once: the loops' steps (:class:`~rewardlab.optimize.
common.Session`) and best-of-n's sampling and scoring batches (:func:`~rewardlab.optimize.best_of_n.run_best_of_n`).

On a terminal: a live rich bar (name, bar, done/total, elapsed, ETA, a short description such as the latest
metrics), removed when the run ends. When stderr is not a terminal (a log file, a pipe, a batch job): a plain line
at the first and the last unit and at most one every :data:`PLAIN_EVERY_S` seconds between them, so a log shows
that the run is alive without a line per step.
"""

from __future__ import annotations

import math
import sys
import time

PLAIN_EVERY_S = 30.0  # seconds between progress lines when stderr is not a terminal


class RunProgress:
    """Progress over ``total`` units (``unit``: step, iteration, batch) named ``name``; ``start`` units are already
    done (a resumed run). ``enabled=False`` shows nothing. ``t0`` (``time.perf_counter()``) is when the run began,
    for the elapsed time of the plain lines (default: now)."""

    def __init__(self, name: str, total: int, start: int = 0, enabled: bool = True, unit: str = "step",
                 t0: float | None = None):
        self.name, self.total, self.start, self.unit = name, total, start, unit
        self.t0 = time.perf_counter() if t0 is None else t0
        self.plain = enabled and not sys.stderr.isatty()  # piped: a plain line now and then, not a live bar
        self._last_line, self._last_done = -math.inf, start
        self._bar = None
        if enabled and not self.plain:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # done, elapsed and ETA first: at 80 columns the description is what gets cut, not the progress
            self._bar = Progress(TextColumn(f"[bold]{name}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
                                 transient=True)
            self._task = self._bar.add_task("", total=total, completed=start)
            self._bar.start()

    def update(self, done: int, shown: str = "") -> None:
        """``done`` of the ``total`` units are complete; ``shown``: what to show next to the count (the metrics of
        the step, or the phase that is running)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, description=shown[:40])
        now = time.perf_counter()
        due = now - self._last_line >= PLAIN_EVERY_S or done in (self.start + 1, self.total)
        if self.plain and due and done != self._last_done:  # a new description alone updates only the live bar
            self._last_line, self._last_done = now, done
            shown = f" {shown}" if shown else ""
            print(f"{self.name}: {self.unit} {done}/{self.total}{shown} ({now - self.t0:.0f} s)", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        """Remove the live bar (idempotent; plain lines need no closing)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
