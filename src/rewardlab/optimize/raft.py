"""RAFT / rejection-sampling fine-tuning (Dong et al. 2023, "RAFT: Reward rAnked FineTuning"), cleanrl-style.

Each iteration: sample K responses per prompt from the current policy, score them, keep the best one per prompt
(or the top ``keep_fraction`` of all prompts' best responses), then fine-tune on the kept (prompt, response) pairs
with the token-mean NLL ``−Σ log π(y_t) / #tokens`` for ``sft_epochs`` epochs. Repeat.

:func:`reward_ranked_loop` is that loop with the fine-tuning loss as a parameter; SuperHF
(:mod:`rewardlab.optimize.superhf`) runs it with its KL-regularized loss.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.generation import Rollout, sequence_logprobs
from rewardlab.optimize.common import LoopArgs, minibatches, step_seed
from rewardlab.optimize.losses import sft_loss
from rewardlab.optimize.session import Session
from rewardlab.rewards.base import Reward

# (session, kept rollout, minibatch indices) -> (loss to minimize, its parts as floats for the log)
StepLoss = Callable[[Session, Rollout, list[int]], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class RAFTArgs(LoopArgs):
    steps: int = 4  # iterations
    prompts_per_step: int = 64
    k: int = 8  # samples per prompt
    keep_fraction: float = 1.0  # of the per-prompt winners, keep the top fraction by reward
    sft_epochs: int = 1
    minibatch_size: int = 16
    lr: float = 1e-5
    eval_every: int = 1


def select_best(rewards: torch.Tensor, k: int, keep_fraction: float = 1.0) -> list[int]:
    """Indices (into the flat ``[P·k]`` rollout) of each prompt's highest-reward sample, then the top
    ``ceil(keep_fraction · P)`` of those by reward. Ties within a prompt go to the first sample."""
    grouped = rewards.view(-1, k)
    best = grouped.argmax(1)
    idx = torch.arange(grouped.shape[0]) * k + best.cpu()
    keep = max(1, math.ceil(keep_fraction * len(idx)))
    order = grouped.max(1).values.cpu().argsort(descending=True, stable=True)[:keep]
    return sorted(idx[order].tolist())


def nll_step(s: Session, kept: Rollout, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
    """RAFT's fine-tuning loss on a minibatch of the kept responses: :func:`sft_loss`."""
    logps, m = sequence_logprobs(s.policy, [kept.prompt_ids[i] for i in idx], [kept.response_ids[i] for i in idx],
                                 s.pad_id)
    loss = sft_loss(logps, m)
    return loss, {"sft_loss": loss.item()}


def reward_ranked_loop(s: Session, args: RAFTArgs, step_loss: StepLoss) -> dict[str, Any]:
    """Sample K per prompt, keep the best (:func:`select_best`), fine-tune on them with ``step_loss`` for
    ``sft_epochs`` epochs of minibatches; each iteration logs the rewards and the mean of each loss part."""
    policy = s.policy
    for step in range(s.start, args.steps):
        s.maybe_evaluate(step)

        # 1. sample K per prompt from the current policy and score them
        ro, r = s.rollout(step, args.k)

        # 2. keep the best response of each prompt
        best = select_best(r, args.k, args.keep_fraction)
        kept = ro.select(best)

        # 3. supervised fine-tuning on the kept responses
        policy.train()
        parts: dict[str, list[float]] = {}
        for epoch in range(args.sft_epochs):
            for idx in minibatches(len(kept), args.minibatch_size, step_seed(args.seed, step, 10 + epoch)):
                with s.amp():
                    loss, logged = step_loss(s, kept, idx)
                s.update(loss)
                for name, value in logged.items():
                    parts.setdefault(name, []).append(value)
        policy.eval()

        s.log(step, {"reward_mean": r.mean().item(), "kept_reward_mean": r[best].mean().item(),
                     **{name: sum(v) / len(v) for name, v in parts.items()}, "kept": len(kept)})
        s.maybe_checkpoint(step + 1)
    return s.finish()


def train_raft(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: RAFTArgs | None = None,
               gold: Reward | None = None, output_dir: str | os.PathLike | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Optimize ``policy`` in place by reward-ranked fine-tuning; returns the run summary."""
    args = args or RAFTArgs()
    s = Session(policy, tokenizer, reward, prompts, args, gold=gold, output_dir=output_dir, name="raft",
                progress=progress)
    return reward_ranked_loop(s, args, nll_step)
