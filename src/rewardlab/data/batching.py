"""Padding and length-aware batching of token-id sequences (shared by training, scoring and generation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right",
              device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists into ``(input_ids [b, t], attention_mask [b, t])`` on the ``right`` or ``left``."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if not len(s):
            continue
        span = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, span] = torch.as_tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


def length_sorted_batches(lengths: Sequence[int], batch_size: int, token_budget: int | None = None) -> list[list[int]]:
    """Group indices into batches of similar length (longest first): at most ``batch_size`` items and, if given,
    at most ``token_budget`` padded tokens per batch."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        too_many = len(current) >= batch_size
        too_wide = token_budget is not None and current and (len(current) + 1) * width > token_budget
        if current and (too_many or too_wide):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
