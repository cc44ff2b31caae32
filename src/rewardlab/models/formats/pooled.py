"""The pooled view of a directory: the :class:`~rewardlab.models.reward_model.RewardModel` (one score per sequence)
that any rewardlab checkpoint holds — a BT/k-head checkpoint, and the heads of an ArmoRM or a MiCRo mixture — or
that an imported reward model (PEFT adapter, OpenRLHF, transformers classifier) is. A rewardlab PRM is refused."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rewardlab.models.formats import bt, hf_classifier, openrlhf, peft_adapter
from rewardlab.models.formats.base import Format, Loaded

POOLED: tuple[Format, ...] = (bt.FORMAT, peft_adapter.FORMAT, openrlhf.FORMAT, hf_classifier.FORMAT)


def pooled_format(path: str | os.PathLike) -> Format | None:
    """The format :func:`load_reward_model` reads ``path`` with (None: not a reward-model directory)."""
    p = Path(path)
    return next((fmt for fmt in POOLED if fmt.detect(p)), None)


def load_reward_model(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                      attn_implementation: str | None = None, chat_template: str | None = None) -> Loaded:
    """The RewardModel of a rewardlab checkpoint, or of a transformers / OpenRLHF reward model or PEFT adapter
    directory; ``chat_template`` (template text) overrides the rendering's (:meth:`Loaded.with_chat_template`).
    Unpacks as ``model, tokenizer, manifest``."""
    fmt = pooled_format(path)
    if fmt is None:
        raise hf_classifier.not_a_reward_model(path)
    loaded = fmt.load(path, device=device, dtype=dtype, attn_implementation=attn_implementation)
    return loaded.with_chat_template(chat_template)
