"""RLOO and GRPO: on-policy policy gradient with k samples per prompt, cleanrl-style.

RLOO (Ahmadian et al. 2024; defaults k = 2, β = 0.05 as in Razin et al. 2025):
    R_i = r(x, y_i) − β · Σ_t log π(y_t)/π₀(y_t)          (KL penalty folded into the reward)
    A_i = R_i − mean_{j≠i} R_j                              (leave-one-out baseline)
GRPO (Shao et al. 2024):
    A_i = (r_i − mean(r)) / (std(r) + ε)                    (group-normalized)
    L = −(1/b) Σ_i (1/|y_i|) Σ_t [s_{i,t} − β·k3_{i,t}]     (KL in the loss; token means, see ``grpo_loss``)
RLOO loss: REINFORCE ``−A_i Σ_t log π(y_t)`` or PPO-clip (ε = 0.2) with ``ppo_epochs`` passes over minibatches;
GRPO's ``s_{i,t}`` is ``A_i log π(y_t)`` (reinforce) or the clipped surrogate (ppo). Both terms of the GRPO loss are
per-sequence token means, so β = 0.04 weighs the KL as in DeepSeekMath whatever the response length.

Dense rewards (``dense=True``, RLOO only; a process reward model, ``prm:DIR``): Fine-Grained RLHF (Wu et al. 2023)
gives each step's reward on the step's last token and folds the KL penalty in per token,
    r_{i,t} = Σ_j R_{i,j}·[t = e_{i,j}] − β·(log π(y_t) − log π₀(y_t)),   G_{i,t} = Σ_{t' ≥ t} γ^(t'−t) r_{i,t'}
(:mod:`rewardlab.rewards.dense`; steps are the decoded response split at the PRM's separator, mapped onto the
policy's tokens by character offsets), and weights each token by its return-to-go minus the RLOO baseline of the
sequence totals: ``A_{i,t} = G_{i,t} − mean_{j≠i} G_{j,0}`` (``G_{i,0}`` is the KL-penalized total, so at t = 0 this
is the outcome-level RLOO advantage; the baseline uses only the other samples, so it adds no bias). Loss:
``−(1/b) Σ_i Σ_t A_{i,t} log π(y_{i,t})`` (reinforce) or the per-token clipped surrogate (ppo). Steps the PRM did not
score (truncated) get reward 0 and are counted (``dense_unscored_steps``).

Optimizer: AdamW (default) or plain SGD (``optimizer="sgd"``: θ ← θ − lr·g, no momentum, no weight decay). AdamW
divides each step by the gradient's running RMS, so a reward whose gradients are small (low reward variance, Razin
et al. 2025) still takes full-size steps; SGD keeps the step proportional to the gradient (set ``max_grad_norm`` to
``inf`` so clipping does not normalize it either).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.data.stepwise import step_spans
from rewardlab.errors import UserError
from rewardlab.models.generation import Rollout, sequence_kl, sequence_logprobs
from rewardlab.optimize.common import LoopArgs, minibatches, prompt_batch, step_seed
from rewardlab.optimize.losses import (
    grpo_advantages,
    grpo_loss,
    kl_penalized_rewards,
    ppo_clip_loss,
    reinforce_loss,
    rloo_advantages,
)
from rewardlab.optimize.session import Session
from rewardlab.rewards.base import Reward
from rewardlab.rewards.dense import step_token_rewards, token_ends_for_spans
from rewardlab.rewards.prm import aggregate_steps


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
    dense: bool = False  # per-step PRM rewards as per-token returns (RLOO; see the module docstring)
    gamma: float = 1.0  # discount of the dense returns


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
    if args.dense and (args.algo != "rloo" or not callable(getattr(reward, "step_scores", None))):
        raise UserError("--dense needs RLOO and a process reward model as the reward (a prm:DIR spec, not wrapped "
                        "in an ensemble, --normalize or --par)")
    s = Session(policy, tokenizer, reward, prompts, args, gold=gold, output_dir=output_dir, name=args.algo,
                progress=progress)
    if args.optimizer == "sgd":  # stateless, so a resumed run continues exactly without loading any state
        s.optimizer = torch.optim.SGD(s.trainable, lr=args.lr)
    for step in range(s.start, args.steps):
        s.maybe_evaluate(step)

        # 1-2. sample k responses for each of P prompts from the current policy; score with the proxy: r [n]
        if args.dense:
            ro, r, step_rewards, step_ends, unscored = dense_rollout(s, step, args.k)
        else:
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
            if args.dense:
                adv, _ = dense_advantages(step_rewards, step_ends, old_logps - ref_logps, mask, args.k,
                                          args.kl_coef, args.gamma)
            elif args.algo == "rloo":
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
                if args.dense:
                    loss = dense_loss(logps, m, adv[idx, :T], old, args.clip_eps)
                elif args.algo == "grpo":
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
                     "adv_abs_mean": (adv[mask.bool()] if args.dense else adv).abs().mean().item(),
                     "response_tokens": mask.sum(1).mean().item(),
                     **({"dense_unscored_steps": unscored} if args.dense else {})})
        s.maybe_checkpoint(step + 1)
    return s.finish()


def token_char_ends(tokenizer, response_ids: Sequence[int]) -> list[int]:
    """Exclusive end offset of each response token in the decoded text (prefix decodes, kept non-decreasing)."""
    ends, last = [], 0
    for t in range(len(response_ids)):
        last = max(last, len(tokenizer.decode(response_ids[: t + 1], skip_special_tokens=True)))
        ends.append(last)
    return ends


@torch.no_grad()
def dense_rollout(s: Session, step: int, k: int) -> tuple[Rollout, torch.Tensor, list[list[float]], list[list[int]],
                                                         int]:
    """Sample as :meth:`Session.rollout` does, score the steps once: ``(rollout, r [n] = the PRM's aggregate,
    step rewards, the token each step ends on, unscored steps)``; unscored (truncated) steps get reward 0."""
    a = s.args
    batch = prompt_batch(s.prompts, a.prompts_per_step, a.seed, step)
    with s.amp():
        ro = s.sample_policy(s.policy, s.tokenizer, batch, k, a.max_new_tokens, a.temperature, a.top_p,
                             seed=step_seed(a.seed, step), batch_size=a.batch_size,
                             max_prompt_length=s.max_prompt_length)
    per_step = s.reward.step_scores(ro.prompts, ro.responses)
    method = getattr(s.reward, "aggregate", "min")
    r = torch.tensor([aggregate_steps(p, method) for p in per_step], dtype=torch.float32, device=s.device)
    rewards, ends, unscored = [], [], 0
    for text, ids, probs in zip(ro.responses, ro.response_ids, per_step):
        unscored += sum(math.isnan(p) for p in probs)
        rewards.append([0.0 if math.isnan(p) else float(p) for p in probs])
        char_ends = [b for _, b in step_spans(text, s.reward.separator)]
        ends.append(token_ends_for_spans(token_char_ends(s.tokenizer, ids), char_ends) if ids else [])
    return ro, r, rewards, ends, unscored


def dense_advantages(step_rewards: Sequence[Sequence[float]], step_ends: Sequence[Sequence[int]],
                     token_kl: torch.Tensor, mask: torch.Tensor, k: int, kl_coef: float,
                     gamma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token advantages ``A [b, T]`` and sequence totals ``G_0 [b]`` (module docstring: Fine-Grained RLHF
    returns minus the leave-one-out mean of the group's totals). ``token_kl``: ``log π − log π₀`` per token
    ``[b, T]``; sequences of a group are contiguous, ``b = P·k``. Padding gets advantage 0."""
    b, T = mask.shape
    if b % k or k < 2:
        raise ValueError(f"{b} sequences do not form groups of k = {k} >= 2")
    returns = torch.zeros(b, T)
    for i in range(b):
        n = int(mask[i].sum())
        if n == 0:
            continue
        r = step_token_rewards(step_rewards[i], step_ends[i], n) - kl_coef * token_kl[i, :n].float().cpu()
        running = 0.0
        for t in range(n - 1, -1, -1):
            running = float(r[t]) + gamma * running
            returns[i, t] = running
    totals = returns[:, 0]
    group = totals.view(-1, k)
    baseline = ((group.sum(-1, keepdim=True) - group) / (k - 1)).view(-1)
    adv = (returns - baseline[:, None]) * mask.float().cpu()
    return adv.to(mask.device), totals.to(mask.device)


def dense_loss(logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor,
               old_logps: torch.Tensor | None = None, clip_eps: float = 0.2) -> torch.Tensor:
    """Per-token-advantage policy loss. REINFORCE (``old_logps`` None): ``−(1/b) Σ_i Σ_t A_{i,t} log π(y_{i,t})``;
    PPO: ``−mean_{tokens} min(ρ_t A_{i,t}, clip(ρ_t, 1−ε, 1+ε) A_{i,t})`` over the batch's masked tokens."""
    adv = advantages.detach()
    if old_logps is None:
        return -(adv * logps * mask).sum(-1).mean()
    ratio = (logps - old_logps.detach()).exp()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -(surrogate * mask).sum() / mask.sum().clamp_min(1)


def train_grpo(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: GRPOArgs | None = None,
               gold: Reward | None = None, output_dir: str | os.PathLike | None = None,
               progress: bool = True) -> dict[str, Any]:
    """GRPO: :func:`train_rloo` with ``algo="grpo"`` (group-normalized advantages, k3 KL in the loss)."""
    return train_rloo(policy, tokenizer, reward, prompts, args or GRPOArgs(), gold, output_dir, progress)
