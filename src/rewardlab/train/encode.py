"""Tokenized training pairs, built in one streaming pass and stored compactly.

Token ids live in :class:`TokenStore`: one flat ``int32`` array plus ``int64`` offsets, i.e. 4 bytes a token and 8 a
sequence. A list of Python ints costs about 36 bytes a token (a 28-byte int object + an 8-byte list slot, for ids
above 256), so storing ids as lists made memory ~9× the token count. :func:`encode_pairs` takes any iterable of
pairs (a generator reading the file row by row is enough), keeps no pair objects, and hashes the data as it goes.

What the pass does to the pairs is counted in :class:`PairCounts`: pairs dropped as overlong (``overlong="drop"``),
and **ties created by truncation** — pairs whose chosen and rejected token ids are identical after truncation
(e.g. two responses that differ only after the budget). A tie carries no preference signal (its BT loss is the
constant ``log 2`` with a zero gradient difference), so ties are dropped from training by default (``drop_ties``).
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.data.tokenize import ChatTemplateError, PairEncoder, Rendering, TruncationStats


class TokenStore:
    """Append-only token-id sequences in one flat int32 array + offsets; ``store[i]`` is a read-only numpy view."""

    def __init__(self) -> None:
        self._flat = array("i")
        self._offsets = array("q", [0])
        self._frozen: tuple[np.ndarray, np.ndarray] | None = None

    def append(self, ids: Sequence[int]) -> None:
        if self._frozen is not None:
            raise RuntimeError("TokenStore is frozen (it has been read); build a new one")
        self._flat.extend(ids)
        self._offsets.append(len(self._flat))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._frozen is None:  # zero-copy views; the arrays can no longer grow once viewed
            self._frozen = (np.frombuffer(self._flat, dtype=np.int32), np.frombuffer(self._offsets, dtype=np.int64))
        return self._frozen

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        flat, off = self._arrays()
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return flat[off[i] : off[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self._arrays()[1])

    @property
    def num_tokens(self) -> int:
        return len(self._flat)

    @property
    def nbytes(self) -> int:
        return self._flat.itemsize * len(self._flat) + self._offsets.itemsize * len(self._offsets)


@dataclass
class PairCounts:
    """What encoding did to the pairs: ``read`` = ``used`` + ``dropped_overlong`` + ``ties_dropped``."""

    read: int = 0
    dropped_overlong: int = 0
    ties: int = 0  # chosen and rejected ids identical after truncation (kept or dropped, see ties_dropped)
    ties_dropped: int = 0
    used: int = 0
    drop_ties: bool = True  # the policy: ties dropped from training (True) or kept

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        tie = f"{self.ties} tied after truncation (identical token ids, no signal"
        tie += ": dropped)" if self.drop_ties else ": kept)"
        return f"{self.read} pairs read, {self.dropped_overlong} dropped as overlong, {tie}, {self.used} used"


class PairHasher:
    """sha256 over the pairs' (prompt, chosen, rejected, margin, weight), fed one pair at a time."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, p: PreferencePair) -> None:
        self._h.update(json.dumps([p.prompt, p.chosen, p.rejected, p.margin, p.weight], sort_keys=True).encode())

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:16]


def data_hash(pairs: Iterable[PreferencePair]) -> str:
    """The 16-hex-digit data hash recorded in run metadata (the same value :func:`encode_pairs` computes)."""
    h = PairHasher()
    for p in pairs:
        h.update(p)
    return h.hexdigest()


@dataclass
class EncodedPairs:
    """Token ids of the pairs kept for training, their margins and weights, and the counts of what was dropped."""

    chosen: TokenStore = field(default_factory=TokenStore)
    rejected: TokenStore = field(default_factory=TokenStore)
    margin: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    stats: TruncationStats = field(default_factory=TruncationStats)
    counts: PairCounts = field(default_factory=PairCounts)
    data_hash: str = ""

    def __len__(self) -> int:
        return len(self.chosen)

    def lengths(self) -> np.ndarray:
        """Per pair, the longer of its two sequences (what a padded ``[2b, t]`` batch is as wide as)."""
        return np.maximum(self.chosen.lengths(), self.rejected.lengths())


def encode_pairs(pairs: Iterable[PreferencePair], tokenizer, max_length: int, overlong: str = "truncate",
                 drop_ties: bool = True, rendering: Rendering | None = None) -> EncodedPairs:
    """Tokenize ``pairs`` in one pass (see the module docstring), rendered as the model renders its inputs
    (``rendering``; None: probed from the tokenizer). A pair whose chosen or rejected is dropped as overlong is
    dropped whole; a tie is dropped when ``drop_ties``. Both are counted in ``counts``."""
    enc = PairEncoder(tokenizer, max_length=max_length, overlong=overlong, rendering=rendering)
    out = EncodedPairs(stats=enc.stats)
    margin, weight = array("f"), array("f")
    hasher, counts = PairHasher(), out.counts
    counts.drop_ties = drop_ties
    for p in pairs:
        hasher.update(p)
        counts.read += 1
        c, r = _encode(enc, p, "chosen"), _encode(enc, p, "rejected")
        if c is None or r is None:
            counts.dropped_overlong += 1
            continue
        if len(c) == len(r) and np.array_equal(c, r):
            counts.ties += 1
            if drop_ties:
                counts.ties_dropped += 1
                continue
        out.chosen.append(c)
        out.rejected.append(r)
        margin.append(p.margin)
        weight.append(p.weight)
    counts.used = len(out.chosen)
    out.margin, out.weight = np.array(margin, dtype=np.float32), np.array(weight, dtype=np.float32)
    out.data_hash = hasher.hexdigest()
    return out


def _encode(enc: PairEncoder, pair: PreferencePair, field: str) -> np.ndarray | list[int] | None:
    try:
        return enc.encode(pair.prompt, getattr(pair, field))
    except ChatTemplateError as e:
        where = f"{pair.source}: field '{field}': " if pair.source is not None else ""
        raise ChatTemplateError(e.reason, where) from None
