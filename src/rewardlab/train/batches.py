"""Which pairs go into which micro-batch, process and optimizer step, epoch by epoch.

Every pair is seen once an epoch; nothing is floored away:

- :func:`make_batches` cuts an epoch into batches of ``batch_size`` pairs (the last one of a length chunk may be
  smaller), deterministic in ``(seed, epoch)``.
- With ``world`` processes, batch ``j`` goes to process ``j mod world``. When the batch count is not a multiple of
  ``world``, the first batches are repeated to fill the last round, as accelerate's ``even_batches`` does (every
  process must take part in every step); at most ``world − 1`` batches are repeated an epoch, and they are counted.
- An optimizer step takes up to ``grad_accum`` micro-batches; the epoch's last step may take fewer, and its loss is
  then averaged over the micro-batches actually in it (as HF Trainer does), so ``steps_per_epoch =
  ⌈⌈batches / world⌉ / grad_accum⌉``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from rewardlab.data.batching import length_sorted_batches
from rewardlab.errors import UserError


def make_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket: bool) -> list[list[int]]:
    """Pair indices per batch for one epoch, deterministic in (seed, epoch); ``lengths[i]`` is pair i's width.

    Bucketed: shuffle, then sort chunks of 64 batches by length and cut them into batches (neighbours have similar
    lengths, so little padding), then shuffle the batch order. Plain: shuffle and cut.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not bucket:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    shuffled = [int(lengths[i]) for i in order]
    chunk = batch_size * 64
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        for b in length_sorted_batches(shuffled[start : start + chunk], batch_size):
            batches.append([part[i] for i in b])
    rng.shuffle(batches)
    return batches


@dataclass
class EpochPlan:
    """One epoch's batches as seen by all processes: ``rounds[j][r]`` is process r's j-th micro-batch."""

    rounds: list[list[list[int]]]
    repeated: int  # batches repeated to even out the processes (see the module docstring)

    @classmethod
    def build(cls, lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket: bool,
              world: int) -> EpochPlan:
        return cls.from_batches(make_batches(lengths, batch_size, seed, epoch, bucket), world)

    @classmethod
    def from_batches(cls, batches: list[list[int]], world: int) -> EpochPlan:
        """The plan of an epoch's ``batches`` dealt round-robin to ``world`` processes (repeats fill the last round)."""
        n_rounds = math.ceil(len(batches) / world)
        filled = batches + batches[: n_rounds * world - len(batches)]
        return cls([filled[j * world : (j + 1) * world] for j in range(n_rounds)], len(filled) - len(batches))

    def micro(self, rank: int) -> list[list[int]]:
        """Process ``rank``'s micro-batches, in order."""
        return [r[rank] for r in self.rounds]

    def pairs(self, start: int, stop: int) -> int:
        """Pairs in micro-batches ``start:stop`` summed over all processes (repeats included)."""
        return sum(len(b) for r in self.rounds[start:stop] for b in r)


def steps_per_epoch(n_pairs: int, batch_size: int, grad_accum: int, world: int, origin: str = "data") -> int:
    """Optimizer steps an epoch takes. Bucketed or not, an epoch has ``⌈n_pairs / batch_size⌉`` batches (every
    length chunk but the last is a whole number of batches). Raises UserError when some process would get no batch
    of its own."""
    n_batches = math.ceil(n_pairs / batch_size)
    check_enough_batches(n_pairs, n_batches, batch_size, world, origin)
    return math.ceil(math.ceil(n_batches / world) / grad_accum)


def shuffled_orders(n: int, seed: int, epoch: int) -> list[int]:
    """Epoch ``epoch``'s order of ``n`` examples when one ``random.Random(seed)`` reshuffles ``range(n)`` every epoch
    (MiCRo's loop): the stream is replayed from its seed, so any epoch, e.g. a resumed one, gets the same order."""
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(epoch + 1):
        order = list(range(n))
        rng.shuffle(order)
    return order


def cut(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """``order`` cut into consecutive batches of ``batch_size`` (the last may be smaller)."""
    return [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def check_enough_batches(n_pairs: int, n_batches: int, batch_size: int, world: int, origin: str = "data") -> None:
    """At least one batch per process: with fewer, a process would train on repeats only (or on nothing)."""
    if n_batches < max(1, world):
        per = f" for {world} processes" if world > 1 else ""
        raise UserError(f"{origin}:1: {n_pairs} usable training pairs make {n_batches} batch(es) of up to "
                        f"{batch_size}{per}; need at least {max(1, world)} (add data, lower --batch-size or use "
                        "fewer processes)")
