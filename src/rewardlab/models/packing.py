"""Prompt-shared, padding-free encoding of token-id sequences for causal decoders.

Real preference data has long prompts and short responses (hh-rlhf, SmolLM2 tokenizer: median 93 prompt tokens, 27
chosen, 37 rejected), and every place that scores m responses of one prompt (BT pairs, reward variance, best-of-n,
RLOO/GRPO groups) encodes that prompt m times. Here sequences that share a token prefix share **one** pass over it:

    row = [ prefix | suffix₁ | suffix₂ | … | prefix' | suffix'₁ | … | pad … ]

with a block attention mask — a token of suffix i attends to its group's prefix and causally to suffix i, never to
another suffix or another group — and position ids that continue after the prefix (suffix i's first token has
position ``len(prefix)``). A causal decoder's hidden state at token j of sequence s depends only on tokens 0..j of s
and their positions, so every token's hidden state, and so every reward and its gradient, equals the one of
encoding s alone (up to floating-point summation order). Groups are found from the token ids themselves (longest
common prefix of lexicographically adjacent sequences), so whatever the chat template renders is shared exactly as
tokenized, and a group of one is plain padding-free packing.

Which sequences share: greedily, in sorted order. A group of m members whose common prefix has length P costs
``Σ Lᵢ − (m−1)·P`` tokens; a sequence whose common prefix with the group is p' ≤ P joins when that costs fewer tokens
than keeping it apart, i.e. iff ``m·p' > (m−1)·P``. Groups are packed into rows of at most ``row_tokens`` tokens
(first fit, longest first); a group longer than that is a row of its own.

Attention cost grows with the row length (the masked part is computed too), so rows stay short (``row_tokens``, 512 by
default); :func:`supports_packing` says which backbones take a custom 4D mask exactly (transformers' sdpa or eager
attention on absolute/rotary-position decoders, without sliding windows shorter than the rows).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# decoder families whose transformers implementation takes a 4D additive mask as given and positions from position_ids
# (rotary or learned absolute), tested in tests/models/test_packing.py
PACKABLE_TYPES = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "gpt_neox", "opt"}
EXACT_ATTENTION = {"sdpa", "eager"}


@dataclass
class Packed:
    """One forward's worth of packed rows. ``read[i]`` is the flat index (row · width + column) of the token whose
    hidden state scores input sequence i."""

    input_ids: torch.Tensor  # [r, t]
    position_ids: torch.Tensor  # [r, t]
    attention_mask: torch.Tensor  # [r, 1, t, t] bool: query may attend key
    read: torch.Tensor  # [n]

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """The mask as transformers' 4D additive form: 0 where attended, the dtype's minimum elsewhere."""
        zero = torch.zeros((), dtype=dtype, device=self.attention_mask.device)
        return torch.where(self.attention_mask, zero, torch.finfo(dtype).min)

    def to(self, device: torch.device | str) -> Packed:
        return Packed(self.input_ids.to(device), self.position_ids.to(device), self.attention_mask.to(device),
                      self.read.to(device))

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.numel())


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def share_groups(seqs: Sequence[Sequence[int]], max_tokens: int | None = None) -> list[tuple[int, list[int]]]:
    """Group sequence indices that share a token prefix: ``[(prefix_length, [index, ...]), ...]``. A group's packed
    size (prefix once + every suffix) stays within ``max_tokens`` unless one sequence alone is longer."""
    order = sorted(range(len(seqs)), key=lambda i: tuple(seqs[i]))
    groups: list[tuple[int, list[int]]] = []
    prefix, members, size = 0, [], 0
    for i in order:
        s = seqs[i]
        if members:
            p = min(prefix, common_prefix(seqs[members[0]], s))
            m = len(members)
            new_size = size + m * (prefix - p) + len(s) - p
            if m * p > (m - 1) * prefix and (max_tokens is None or new_size <= max_tokens):
                prefix, size = p, new_size
                members.append(i)
                continue
            groups.append((prefix, members))
        prefix, members, size = len(s), [i], len(s)
    if members:
        groups.append((prefix, members))
    return groups


def _group_size(seqs: Sequence[Sequence[int]], prefix: int, members: list[int]) -> int:
    return prefix + sum(len(seqs[i]) - prefix for i in members)


def read_offset(seq: Sequence[int], skip_token_id: int | None) -> int:
    """Index in ``seq`` of the token that scores it: the last one, or with ``skip_token_id`` the last one that is not
    it (transformers' decoder-classifier rule; position 0 when every token is skipped)."""
    j = len(seq) - 1
    if skip_token_id is not None:
        while j >= 0 and seq[j] == skip_token_id:
            j -= 1
    return max(j, 0)


Group = tuple[int, list[int]]  # (shared prefix length, member sequence indices)


def plan_rows(seqs: Sequence[Sequence[int]], row_tokens: int = 512, share: bool = True,
              fill: bool = True) -> list[list[Group]]:
    """The groups of ``seqs`` (:func:`share_groups`, at most ``row_tokens`` tokens each; ``share=False``: one
    sequence a group) packed into rows of at most ``row_tokens`` tokens, first fit decreasing; rows come out longest
    first. ``fill=False``: every group is a row of its own."""
    if any(len(s) == 0 for s in seqs):
        raise ValueError("cannot pack an empty sequence")
    groups = share_groups(seqs, max_tokens=row_tokens) if share else [(len(s), [i]) for i, s in enumerate(seqs)]
    sizes = [_group_size(seqs, p, m) for p, m in groups]
    if not fill:
        return [[groups[g]] for g in sorted(range(len(groups)), key=lambda g: -sizes[g])]
    rows: list[list[Group]] = []
    room: list[int] = []
    for g in sorted(range(len(groups)), key=lambda g: -sizes[g]):
        for r, free in enumerate(room):
            if sizes[g] <= free:
                rows[r].append(groups[g])
                room[r] -= sizes[g]
                break
        else:
            rows.append([groups[g]])
            room.append(max(row_tokens, sizes[g]) - sizes[g])
    return sorted(rows, key=lambda row: -sum(_group_size(seqs, p, m) for p, m in row))


def build(seqs: Sequence[Sequence[int]], rows: list[list[Group]], pad_id: int,
          skip_token_id: int | None = None) -> tuple[list[int], Packed]:
    """Tensors for ``rows``; returns the sequence indices they hold and the :class:`Packed` whose ``read[j]`` scores
    sequence ``indices[j]``."""
    width = max(sum(_group_size(seqs, p, m) for p, m in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    block = torch.empty((len(rows), width), dtype=torch.long)  # group of each token; each pad a block of its own
    branch = torch.zeros((len(rows), width), dtype=torch.long)  # 0 = shared prefix, b >= 1 = suffix b of its group
    indices: list[int] = []
    read: list[int] = []
    n_blocks = 0
    for r, row in enumerate(rows):
        col = 0
        for prefix, members in row:
            start = col
            ids[r, col : col + prefix] = torch.as_tensor(seqs[members[0]][:prefix], dtype=torch.long)
            pos[r, col : col + prefix] = torch.arange(prefix)
            col += prefix
            for b, i in enumerate(members, start=1):
                s, n = seqs[i], len(seqs[i]) - prefix
                ids[r, col : col + n] = torch.as_tensor(s[prefix:], dtype=torch.long)
                pos[r, col : col + n] = torch.arange(prefix, len(s))
                branch[r, col : col + n] = b
                j = read_offset(s, skip_token_id)
                indices.append(i)
                read.append(r * width + (start + j if j < prefix else col + j - prefix))
                col += n
            block[r, start:col] = n_blocks
            n_blocks += 1
        block[r, col:] = n_blocks + torch.arange(width - col)  # pads attend to themselves only (no empty softmax)
        n_blocks += width - col
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    same_block = block[:, :, None] == block[:, None, :]
    same_branch = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    mask = (same_block & same_branch & causal).unsqueeze(1)
    return indices, Packed(ids, pos, mask, torch.tensor(read, dtype=torch.long))


def nonempty(seqs: Sequence[Sequence[int]], pad_id: int) -> list[Sequence[int]]:
    """``seqs`` with every empty sequence (a tokenizer that adds no special token, nothing rendered) as one pad token:
    a real position to read, the same in every batch, packed or padded."""
    return [s if len(s) else [pad_id] for s in seqs]


def pack(seqs: Sequence[Sequence[int]], pad_id: int, row_tokens: int = 512, share: bool = True,
         skip_token_id: int | None = None, fill: bool = True) -> Packed:
    """All of ``seqs`` in one :class:`Packed`, ``read`` in input order (see the module docstring; an empty sequence is
    one pad token, :func:`nonempty`); ``share=False`` packs every sequence as a group of its own (padding-free
    packing only); ``fill=False`` gives every group a row of its own (prompt sharing only)."""
    seqs = nonempty(seqs, pad_id)
    indices, packed = build(seqs, plan_rows(seqs, row_tokens, share, fill), pad_id, skip_token_id)
    order = torch.empty(len(seqs), dtype=torch.long)
    order[torch.tensor(indices, dtype=torch.long)] = torch.arange(len(seqs))
    packed.read = packed.read[order]
    return packed


def packed_batches(seqs: Sequence[Sequence[int]], pad_id: int, row_tokens: int = 512, batch_tokens: int = 8192,
                   skip_token_id: int | None = None):
    """Yield ``(indices, Packed)`` forwards of at most ``batch_tokens`` padded tokens (or one row if longer) that
    together score every sequence once — for scoring many sequences in bounded memory."""
    rows = plan_rows(seqs, row_tokens)
    batch: list[list[Group]] = []
    for row in rows:  # longest first, so a batch's width is its first row's
        width = sum(_group_size(seqs, p, m) for p, m in (batch[0] if batch else row))
        if batch and (len(batch) + 1) * width > batch_tokens:
            yield build(seqs, batch, pad_id, skip_token_id)
            batch = []
        batch.append(row)
    if batch:
        yield build(seqs, batch, pad_id, skip_token_id)


def supports_packing(backbone: torch.nn.Module, max_length: int | None = None) -> tuple[bool, str]:
    """Whether ``backbone`` computes exactly under :func:`pack`'s mask and position ids, and if not, why."""
    config = backbone.config
    kind = getattr(config, "model_type", "")
    if kind not in PACKABLE_TYPES:
        return False, f"model type {kind!r} is not one whose packed encoding is tested ({sorted(PACKABLE_TYPES)})"
    attn = getattr(config, "_attn_implementation", None) or "eager"
    if attn not in EXACT_ATTENTION:
        return False, f"attention implementation {attn!r} takes no custom 4D mask (sdpa and eager do)"
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True) and (max_length is None or window < max_length):
        return False, f"sliding-window attention ({window} tokens) is not expressed by the packed mask"
    return True, ""


_SAID: set[str] = set()


def packing_decision(model: torch.nn.Module, max_length: int, packing: str = "auto") -> bool:
    """Whether ``model`` scores packed (``packing`` "auto": when it is exact for it; "off": never). When "auto" must
    fall back, the reason is printed once per process on stderr."""
    if packing not in ("auto", "off"):
        raise ValueError(f"packing must be 'auto' or 'off', got {packing!r}")
    packable = getattr(model, "packable", None)
    if packing == "off" or packable is None:
        return False
    ok, why = packable(max_length)
    if not ok and why not in _SAID:
        _SAID.add(why)
        print(f"rewardlab: encoding each sequence separately (no prompt sharing): {why}", file=sys.stderr)
    return ok
