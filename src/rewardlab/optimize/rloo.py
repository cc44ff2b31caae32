"""RLOO and GRPO: on-policy policy gradient with k samples per prompt (DESIGN §6), cleanrl-style.

RLOO (Ahmadian et al. 2024; defaults k = 2, β = 0.05 as in Razin et al. 2025):
    R_i = r(x, y_i) − β · Σ_t log π(y_t)/π₀(y_t)          (KL penalty folded into the reward)
    A_i = R_i − mean_{j≠i} R_j                              (leave-one-out baseline)
GRPO (Shao et al. 2024):
    A_i = (r_i − mean(r)) / (std(r) + ε)                    (group-normalized)
    L = −(1/b) Σ_i (1/|y_i|) Σ_t [s_{i,t} − β·k3_{i,t}]     (KL in the loss; token means, see ``grpo_loss``)
RLOO loss: REINFORCE ``−A_i Σ_t log π(y_t)`` or PPO-clip (ε = 0.2) with ``ppo_epochs`` passes over minibatches;
GRPO's ``s_{i,t}`` is ``A_i log π(y_t)`` (reinforce) or the clipped surrogate (ppo). Both terms of the GRPO loss are
per-sequence token means, so β = 0.04 weighs the KL as in DeepSeekMath whatever the response length.

Optimizer: AdamW (default) or plain SGD (``optimizer="sgd"``: θ ← θ − lr·g, no momentum, no weight decay). AdamW
divides each step by the gradient's running RMS, so a reward whose gradients are small (low reward variance, Razin
et al. 2025) still takes full-size steps; SGD keeps the step proportional to the gradient (set ``max_grad_norm`` to
``inf`` so clipping does not normalize it either).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.generation import sequence_kl, sequence_logprobs
from rewardlab.optimize.common import LoopArgs, Session, minibatches, step_seed
from rewardlab.optimize.losses import (
    grpo_advantages,
    grpo_loss,
    kl_penalized_rewards,
    ppo_clip_loss,
    reinforce_loss,
    rloo_advantages,
)
from rewardlab.rewards.base import Reward


@dataclass
class RLOOArgs(LoopArgs):
    algo: str = "rloo"  # rloo | grpo
    k: int = 2  # samples per prompt
    kl_coef: float = 0.05  # β (RLOO: in the reward; GRPO: k3 term in the loss)
    loss: str = "reinforce"  # reinforce | ppo
    clip_eps: float = 0.2
    ppo_epochs: int = 1
    minibatch_size: int = 0  # sequences per optimizer step (0: the whole batch)
    grpo_eps: float = 1e-4
    optimizer: str = "adamw"  # adamw | sgd (plain: no momentum, no weight decay, so no optimizer state)


@dataclass
class GRPOArgs(RLOOArgs):
    algo: str = "grpo"
    k: int = 8
    kl_coef: float = 0.04  # DeepSeekMath's β


def train_rloo(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: RLOOArgs | None = None,
               gold: Reward | None = None, output_dir: str | os.PathLike | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Optimize ``policy`` in place against ``reward``; returns the run summary (evaluations, Gao fit, ...)."""
    args = args or RLOOArgs()
    if args.algo not in ("rloo", "grpo") or args.loss not in ("reinforce", "ppo"):
        raise ValueError(f"unknown algo {args.algo!r} or loss {args.loss!r}")
    if args.k < 2:
        raise ValueError("RLOO/GRPO need k >= 2 samples per prompt")
    if args.optimizer not in ("adamw", "sgd"):
        raise ValueError(f"unknown optimizer {args.optimizer!r} (adamw | sgd)")
    s = Session(policy, tokenizer, reward, prompts, args, gold=gold, output_dir=output_dir, name=args.algo,
                progress=progress)
    if args.optimizer == "sgd":  # stateless, so a resumed run continues exactly without loading any state
        s.optimizer = torch.optim.SGD(policy.parameters(), lr=args.lr)
    for step in range(s.start, args.steps):
        s.maybe_evaluate(step)

        # 1-2. sample k responses for each of P prompts from the current policy; score with the proxy: r [n]
        ro, r = s.rollout(step, args.k)
        n = len(ro)

        with torch.no_grad():
            # 3. log-probs under the sampling policy and the frozen reference π₀: [n, T]
            with s.amp():
                old_logps, mask = sequence_logprobs(policy, ro.prompt_ids, ro.response_ids, s.pad_id,
                                                    args.temperature, args.batch_size)
                ref_logps, _ = sequence_logprobs(s.ref, ro.prompt_ids, ro.response_ids, s.pad_id,
                                                 args.temperature, args.batch_size)
            kl = sequence_kl(old_logps, ref_logps, mask)  # [n]

            # 4. advantages within each prompt's group of k
            if args.algo == "rloo":
                R = kl_penalized_rewards(r, kl, args.kl_coef)
                adv = rloo_advantages(R.view(-1, args.k)).view(-1)
            else:
                adv = grpo_advantages(r.view(-1, args.k), args.grpo_eps).view(-1)

        # 5. policy update
        policy.train()
        losses = []
        for epoch in range(args.ppo_epochs):
            for idx in minibatches(n, args.minibatch_size, step_seed(args.seed, step, 10 + epoch)):
                with s.amp():
                    logps, m = sequence_logprobs(policy, [ro.prompt_ids[i] for i in idx],
                                                 [ro.response_ids[i] for i in idx], s.pad_id, args.temperature)
                T = m.shape[1]
                old = old_logps[idx, :T] if args.loss == "ppo" else None
                if args.algo == "grpo":
                    loss = grpo_loss(logps, m, adv[idx], ref_logps[idx, :T], args.kl_coef, old, args.clip_eps)
                elif old is None:
                    loss = reinforce_loss(logps, m, adv[idx])
                else:
                    loss = ppo_clip_loss(logps, old, m, adv[idx], args.clip_eps)
                grad_norm = s.update(loss)
                losses.append(loss.item())
        policy.eval()

        s.log(step, {"reward_mean": r.mean().item(), "reward_std": r.std().item(), "kl_mean": kl.mean().item(),
                     "loss": sum(losses) / len(losses), "grad_norm": grad_norm,
                     "adv_abs_mean": adv.abs().mean().item(), "response_tokens": mask.sum(1).mean().item()})
        s.maybe_checkpoint(step + 1)
    return s.finish()


def train_grpo(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: GRPOArgs | None = None,
               gold: Reward | None = None, output_dir: str | os.PathLike | None = None,
               progress: bool = True) -> dict[str, Any]:
    """GRPO: :func:`train_rloo` with ``algo="grpo"`` (group-normalized advantages, k3 KL in the loss)."""
    return train_rloo(policy, tokenizer, reward, prompts, args or GRPOArgs(), gold, output_dir, progress)
