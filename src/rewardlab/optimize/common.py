"""Small pieces every optimize loop shares: the loops' common arguments (:class:`LoopArgs`), seeds, prompt batches,
minibatches, frozen reference copies and autocast.

Reproducibility: every random choice of a loop (prompt batch, sampling, minibatch order) is seeded from
``(args.seed, step)`` by :func:`step_seed`, so a resumed run continues exactly as an uninterrupted one would. A run's
set-up, logging, checkpoints and end are :class:`rewardlab.optimize.session.Session`'s; gold tracking is
:mod:`rewardlab.optimize.gold`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.rewards.base import Reward


@dataclass
class LoopArgs:
    """Arguments shared by all iterative loops (each loop's dataclass extends these)."""

    steps: int = 100  # optimizer iterations (RLOO/GRPO) or outer iterations (RAFT, online DPO)
    prompts_per_step: int = 8
    max_new_tokens: int = 32
    max_prompt_length: int | None = None  # prompt tokens kept (their end); None: what fits the policy
    temperature: float = 1.0
    top_p: float = 1.0
    lr: float = 1e-5
    max_grad_norm: float = 1.0
    seed: int = 0
    batch_size: int = 64  # sequences per generation / log-prob forward
    eval_every: int = 10  # steps between gold-tracking evaluations (0: only first and last)
    eval_prompts: int = 32  # the first N training prompts are the evaluation prompts
    eval_samples: int = 4  # samples per evaluation prompt
    calibration_samples: int = 2  # initial-policy samples per prompt for rewards that need calibrate()
    save_every: int = 0  # steps between checkpoints (0: only at the end)
    resume: bool = False
    dtype: str = "auto"  # forward-pass precision (master weights stay fp32): auto | bf16 | fp16 | fp32
    report_to: str = "none"  # also log metrics.jsonl to: tensorboard | wandb | none | a comma list (rewardlab.tracking)
    lora_r: int = 0  # LoRA rank on the policy (0: full fine-tuning; rewardlab.optimize.lora)
    lora_alpha: int = 16  # LoRA scaling α (the update is scaled by α / r)
    lora_target: str = "all-linear"  # adapted modules: all-linear or comma-separated module names
    engine: str = "transformers"  # policy sampling engine: transformers | vllm (rewardlab.models.engines)


def frozen_copy(model: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A deep copy in eval mode with gradients off (the reference policy), cast to ``dtype`` if given."""
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref if dtype is None else ref.to(dtype)


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``; a no-op for fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    """A distinct, reproducible seed for each (run seed, step, purpose)."""
    return (seed * 1_000_003 + step * 7919 + salt) % (2**31 - 1)


def prompt_batch(prompts: Sequence[Prompt], size: int, seed: int, step: int) -> list[Prompt]:
    """``size`` prompts for ``step``: epoch-wise shuffles of all prompts, seeded by (seed, epoch)."""
    n = len(prompts)
    out: list[Prompt] = []
    start = step * size
    while len(out) < size:
        epoch, offset = divmod(start + len(out), n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(seed, epoch, 1)))
        take = min(size - len(out), n - offset)
        out += [prompts[i] for i in order[offset : offset + take].tolist()]
    return out


def minibatches(n: int, size: int, seed: int) -> list[list[int]]:
    """Shuffled index minibatches of ``size`` (``size <= 0``: one batch of all n)."""
    if size <= 0 or size >= n:
        return [list(range(n))]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return [order[i : i + size] for i in range(0, n, size)]


def reward_metrics(reward: Reward, prefix: str = "") -> dict[str, Any]:
    """What a reward reports about its last ``score`` call (``batch_metrics``: a ``maxmin:`` reward's group means
    and worst group, :mod:`rewardlab.rewards.maxmin`), keys prefixed; {} for rewards that report nothing."""
    return {prefix + k: v for k, v in (getattr(reward, "batch_metrics", None) or {}).items()}
