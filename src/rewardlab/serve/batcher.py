"""Dynamic batching across concurrent requests, with the reward run off the event loop.

Requests are queued; one worker task takes the oldest request, then keeps collecting requests until the batch
reaches ``max_batch_tokens`` / ``max_batch_items`` or ``max_wait_ms`` has passed since it took the first one (no
wait at all while requests are already queued). The items of the batch are sorted by length (cost) and scored in ONE
call of ``run`` on a single worker thread, so the event loop keeps accepting requests while the model runs; the
rows are then put back in request order and each request's future is resolved.

A request is never split: one larger than the budget runs as a batch of its own. Results equal scoring each request
alone as long as ``run`` is batch-composition invariant (rewardlab's RewardModel is). If a batch of
several requests fails, each request is retried alone so that one failure does not fail its neighbours. For a
reward that is *not* batch-invariant (``merge=False``) every batch is exactly one request, its items in request
order: a client's scores never depend on another client's items.

Back-pressure: the queue holds at most ``max_queue_tokens`` (sum of item costs) -- a request that would exceed it
is refused at once with :class:`Overloaded` (the server answers 503 with ``Retry-After``) instead of growing memory;
a request alone in an empty queue is always accepted. ``Retry-After`` is the time to drain the queue at the recent
throughput, ``ceil(queued_tokens / (tokens/s))``, clamped to [1, 60] s (1 s before the first batch).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch


class ShuttingDown(RuntimeError):
    """Raised by :meth:`DynamicBatcher.submit` once the batcher stopped accepting work."""


class Overloaded(RuntimeError):
    """Raised by :meth:`DynamicBatcher.submit` when the queue is full; ``retry_after_s`` is when to try again."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class BatchStats:
    """What one batch held; passed to the ``on_batch`` callback (metrics)."""

    requests: int
    items: int
    tokens: int
    seconds: float


@dataclass
class _Job:
    items: list[Any]
    costs: list[int]
    future: asyncio.Future


class DynamicBatcher:
    """Collects items from concurrent :meth:`submit` calls into batches for ``run(items) -> Tensor[n] | [n, k]``."""

    def __init__(
        self,
        run: Callable[[list[Any]], torch.Tensor],
        max_batch_tokens: int = 16384,
        max_batch_items: int = 512,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        merge: bool = True,
        max_queue_tokens: int | None = None,
    ):
        if max_batch_tokens < 1 or max_batch_items < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_tokens and max_batch_items must be >= 1, max_wait_ms >= 0")
        if max_queue_tokens is not None and max_queue_tokens < 1:
            raise ValueError("max_queue_tokens must be >= 1 (or None for no cap)")
        self.run = run
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_items = max_batch_items
        self.max_wait_s = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.merge = merge
        self.max_queue_tokens = max_queue_tokens
        self.queued_tokens = 0
        self._tokens_per_s: float | None = None  # moving average over recent batches, for Retry-After
        self._pending: collections.deque[_Job] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-score")
        self._closing = False
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="rewardlab-batcher")

    async def stop(self) -> None:
        """Stop accepting work, finish everything queued or running, then stop the worker thread."""
        self._closing = True
        if self._worker is None:
            return
        while self._pending or not self._idle.is_set():
            await asyncio.sleep(0.005)
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
        self._worker = None
        self._executor.shutdown(wait=True)

    @property
    def queued_requests(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ API
    async def submit(self, items: Sequence[Any], costs: Sequence[int]) -> torch.Tensor:
        """Score ``items`` (with per-item ``costs``, e.g. token counts) in some batch; returns their rows in order."""
        if self._closing or self._worker is None:
            raise ShuttingDown("the server is shutting down")
        if len(items) != len(costs):
            raise ValueError("items and costs differ in length")
        future = asyncio.get_running_loop().create_future()
        if not items:
            return torch.zeros(0)
        job = _Job(list(items), [max(1, int(c)) for c in costs], future)
        cost = sum(job.costs)
        if self.max_queue_tokens is not None and self._pending and self.queued_tokens + cost > self.max_queue_tokens:
            raise Overloaded(f"the server is overloaded ({self.queued_tokens} tokens queued, the limit is "
                             f"{self.max_queue_tokens}); retry later", self.retry_after_s())
        self._pending.append(job)
        self.queued_tokens += cost
        self._wakeup.set()
        return await future

    def retry_after_s(self) -> int:
        """Seconds to drain the queue at the recent throughput, in [1, 60] (see the module docstring)."""
        if not self._tokens_per_s:
            return 1
        return int(min(60, max(1, math.ceil(self.queued_tokens / self._tokens_per_s))))

    def _pop(self) -> _Job:
        job = self._pending.popleft()
        self.queued_tokens -= sum(job.costs)
        return job

    # ------------------------------------------------------------------ worker
    async def _collect(self) -> list[_Job]:
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        jobs: list[_Job] = []
        tokens = items = 0
        while True:
            if self._pending:
                job = self._pending[0]
                if job.future.done():  # the client went away before we got to it
                    self._pop()
                    continue
                if jobs and (not self.merge or tokens + sum(job.costs) > self.max_batch_tokens
                             or items + len(job.items) > self.max_batch_items):
                    break
                self._pop()
                jobs.append(job)
                tokens += sum(job.costs)
                items += len(job.items)
                if not self.merge or tokens >= self.max_batch_tokens or items >= self.max_batch_items:
                    break
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or not jobs:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except (asyncio.TimeoutError, TimeoutError):
                break
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            if not jobs:
                continue
            self._idle.clear()
            try:
                await self._run_jobs(loop, jobs)
            finally:
                self._idle.set()

    async def _run_jobs(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        flat = [(cost, j, i) for j, job in enumerate(jobs) for i, cost in enumerate(job.costs)]
        if self.merge:  # length-sorted: less padding inside the reward's own mini-batches
            flat.sort(key=lambda t: t[0])
        batch = [jobs[j].items[i] for _, j, i in flat]
        t0 = time.perf_counter()
        try:
            rows = await loop.run_in_executor(self._executor, self._run_checked, batch)
        except Exception as exc:  # isolate: retry each request alone so one bad request fails alone
            if len(jobs) == 1:
                _resolve(jobs[0].future, exc=exc)
                return
            for job in jobs:
                try:
                    _resolve(job.future, await loop.run_in_executor(self._executor, self._run_checked, job.items))
                except Exception as e:  # noqa: BLE001 - delivered to the request that caused it
                    _resolve(job.future, exc=e)
            return
        stats = BatchStats(len(jobs), len(batch), sum(c for c, _, _ in flat), time.perf_counter() - t0)
        rate = stats.tokens / max(stats.seconds, 1e-6)
        self._tokens_per_s = rate if self._tokens_per_s is None else 0.8 * self._tokens_per_s + 0.2 * rate
        if self.on_batch is not None:
            self.on_batch(stats)
        offsets = [0]
        for job in jobs:
            offsets.append(offsets[-1] + len(job.items))
        out: list[torch.Tensor] = [rows[0]] * len(flat)
        for row, (_, j, i) in zip(rows, flat, strict=True):
            out[offsets[j] + i] = row
        for j, job in enumerate(jobs):
            _resolve(job.future, torch.stack(out[offsets[j] : offsets[j + 1]]))

    def _run_checked(self, batch: list[Any]) -> torch.Tensor:
        rows = self.run(batch)
        if not isinstance(rows, torch.Tensor) or rows.ndim not in (1, 2) or rows.shape[0] != len(batch):
            shape = tuple(rows.shape) if isinstance(rows, torch.Tensor) else type(rows).__name__
            raise RuntimeError(f"reward returned {shape} for {len(batch)} items; expected [n] or [n, k]")
        return rows.detach().float().cpu()


def _resolve(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # cancelled by a disconnected client
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
