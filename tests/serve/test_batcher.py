"""DynamicBatcher: merges concurrent requests, respects the budget, keeps order, isolates failures, drains."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
import torch

from rewardlab.serve.batcher import DynamicBatcher, Overloaded, ShuttingDown


class Recorder:
    """run(): score = 10 * value + 1 per item, recording every batch and the thread it ran on."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None):
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay_s, self.fail_on = delay_s, fail_on

    def __call__(self, items):
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("poisoned item")
        return torch.tensor([10.0 * x + 1 for x in items])


def test_concurrent_requests_are_merged_sorted_and_answered_in_order():
    rec = Recorder(delay_s=0.01)
    rng = random.Random(0)
    requests = [[rng.randint(0, 99) for _ in range(rng.randint(1, 5))] for _ in range(40)]

    async def main():
        b = DynamicBatcher(rec, max_batch_tokens=10_000, max_batch_items=64, max_wait_ms=20)
        await b.start()
        results = await asyncio.gather(*(b.submit(r, [x + 1 for x in r]) for r in requests))
        await b.stop()
        return results

    results = asyncio.run(main())
    for req, out in zip(requests, results, strict=True):
        assert out.tolist() == [10.0 * x + 1 for x in req]
    assert len(rec.batches) < len(requests)  # requests were merged
    assert max(len(b) for b in rec.batches) > 5
    assert all(b == sorted(b) for b in rec.batches)  # cost = value + 1, so sorted by value
    assert all(len(b) <= 64 for b in rec.batches)
    assert rec.threads == {next(iter(rec.threads))} and "rewardlab-score" in next(iter(rec.threads))


def test_token_budget_caps_batches_but_never_splits_a_request():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, max_batch_tokens=10, max_batch_items=100, max_wait_ms=50)
        await b.start()
        small = [b.submit([i], [4]) for i in range(6)]
        big = b.submit([100, 101, 102], [20, 20, 20])  # alone over the budget: runs as its own batch
        out = await asyncio.gather(*small, big)
        await b.stop()
        return out

    out = asyncio.run(main())
    assert out[-1].tolist() == [1001.0, 1011.0, 1021.0]
    for batch in rec.batches:
        if 100 in batch:
            assert sorted(batch) == [100, 101, 102]
        else:
            assert 4 * len(batch) <= 10


def test_a_failing_request_fails_alone():
    rec = Recorder(fail_on=13)

    async def main():
        b = DynamicBatcher(rec, max_wait_ms=50)
        await b.start()
        out = await asyncio.gather(b.submit([1, 2], [1, 1]), b.submit([13], [1]), b.submit([3], [1]),
                                   return_exceptions=True)
        await b.stop()
        return out

    ok1, bad, ok2 = asyncio.run(main())
    assert ok1.tolist() == [11.0, 21.0] and ok2.tolist() == [31.0]
    assert isinstance(bad, RuntimeError) and "poisoned" in str(bad)


def test_stop_drains_queued_work_then_refuses_new_work():
    rec = Recorder(delay_s=0.05)

    async def main():
        b = DynamicBatcher(rec, max_batch_items=1, max_wait_ms=0)
        await b.start()
        tasks = [asyncio.ensure_future(b.submit([i], [1])) for i in range(5)]
        await asyncio.sleep(0.01)
        await b.stop()  # returns only after all five ran
        assert all(t.done() for t in tasks)
        with pytest.raises(ShuttingDown):
            await b.submit([9], [1])
        return [t.result().item() for t in tasks]

    assert asyncio.run(main()) == [1.0, 11.0, 21.0, 31.0, 41.0]


def test_cancelled_requests_are_skipped_and_bad_shapes_reported():
    rec = Recorder(delay_s=0.05)

    async def main():
        b = DynamicBatcher(rec, max_batch_items=1, max_wait_ms=0)
        await b.start()
        first = asyncio.ensure_future(b.submit([1], [1]))
        gone = asyncio.ensure_future(b.submit([2], [1]))
        await asyncio.sleep(0.01)
        gone.cancel()
        assert (await first).tolist() == [11.0]
        await b.stop()
        bad = DynamicBatcher(lambda items: torch.zeros(len(items) + 1))
        await bad.start()
        with pytest.raises(RuntimeError, match="expected"):
            await bad.submit([1], [1])
        await bad.stop()

    asyncio.run(main())
    assert [2] not in rec.batches


def test_full_queue_refuses_with_retry_after_and_accounting_returns_to_zero():
    """Queue cap in tokens: requests that would overflow it are refused at once; the queue never holds more."""
    rec = Recorder(delay_s=0.2)

    async def main():
        b = DynamicBatcher(rec, max_batch_tokens=10, max_batch_items=100, max_wait_ms=0, max_queue_tokens=10)
        await b.start()
        running = asyncio.ensure_future(b.submit([0], [10]))  # taken at once: the queue is empty again
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(b.submit([i], [4])) for i in (1, 2)]  # 8 tokens queued
        await asyncio.sleep(0.01)
        assert b.queued_tokens == 8
        with pytest.raises(Overloaded) as e:
            await b.submit([3], [4])  # 8 + 4 > 10
        first_retry = e.value.retry_after_s
        results = await asyncio.gather(running, *queued)
        assert b.queued_tokens == 0
        alone = await b.submit([4], [50])  # larger than the cap, but the queue is empty: accepted
        await b.stop()
        return first_retry, b, [r.tolist() for r in results], alone.tolist()

    first_retry, b, results, alone = asyncio.run(main())
    assert first_retry == 1  # no batch had finished yet: no throughput estimate
    assert results == [[1.0], [11.0], [21.0]] and alone == [41.0]
    # throughput is now known: ~10-50 tokens per 0.2 s batch; 1000 queued tokens take far longer than 1 s
    b.queued_tokens = 1000
    assert 1 < b.retry_after_s() <= 60


def test_no_merge_runs_each_request_alone_in_request_order():
    """merge=False (a batch-dependent reward): one request per batch, items unsorted, however many are queued."""
    rec = Recorder(delay_s=0.01)
    requests = [[5, 1, 3], [9, 2], [4], [8, 7, 6]]

    async def main():
        b = DynamicBatcher(rec, max_batch_tokens=10_000, max_wait_ms=20, merge=False)
        await b.start()
        out = await asyncio.gather(*(b.submit(r, [10 - x for x in r]) for r in requests))
        await b.stop()
        return out

    out = asyncio.run(main())
    assert [o.tolist() for o in out] == [[10.0 * x + 1 for x in r] for r in requests]
    assert sorted(rec.batches) == sorted(requests)  # exactly the requests, each in its own order
