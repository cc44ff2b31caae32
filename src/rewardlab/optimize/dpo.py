"""Online iterative DPO (Dong et al. 2024, "RLHF Workflow: From Reward Modeling to Online RLHF"), cleanrl-style.

Each iteration t: sample K = 8 responses per prompt from the current policy π_{t−1}, score them, pair the
highest-reward response (chosen) with the lowest (rejected), skipping prompts whose K rewards are all equal, then
minimize the DPO loss (β = 0.1)

    −log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])

for ``epochs`` passes over the pairs. Default: 3 iterations.

The reference (``args.ref``): ``initial`` (default) keeps π_ref = π₀, the starting policy, in every iteration, as
RLHFlow's Online-RLHF scripts (``--ref_model $initial_model``) and OpenRLHF's iterative DPO do; ``previous`` uses
π_ref = π_{t−1}, the policy at the start of the iteration (each iteration a DPO step from where the last ended);
its reference log-probs are taken from the policy itself before the iteration's first update, so no copy is made.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.generation import sequence_logprobs
from rewardlab.optimize.common import LoopArgs, minibatches, step_seed
from rewardlab.optimize.losses import dpo_loss
from rewardlab.optimize.session import Session
from rewardlab.rewards.base import Reward


@dataclass
class OnlineDPOArgs(LoopArgs):
    steps: int = 3  # iterations
    prompts_per_step: int = 64
    k: int = 8
    beta: float = 0.1
    epochs: int = 2  # passes over each iteration's pairs
    minibatch_size: int = 16  # pairs per optimizer step
    lr: float = 5e-7
    eval_every: int = 1
    ref: str = "initial"  # initial: π_ref = π₀ every iteration | previous: π_ref = the iteration's start policy


REFS = ("initial", "previous")


def best_worst_pairs(rewards: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """``(chosen, rejected)`` flat indices per prompt: argmax and argmin of its k rewards (first on ties);
    prompts whose rewards are all equal give no pair."""
    grouped = rewards.view(-1, k).cpu()
    pairs = []
    for g in range(grouped.shape[0]):
        hi, lo = int(grouped[g].argmax()), int(grouped[g].argmin())
        if grouped[g, hi] > grouped[g, lo]:
            pairs.append((g * k + hi, g * k + lo))
    return pairs


def _seq_logps(s: Session, model, prompt_ids, response_ids, batch_size: int | None = None) -> torch.Tensor:
    with s.amp():
        logps, mask = sequence_logprobs(model, prompt_ids, response_ids, s.pad_id, batch_size=batch_size)
    return (logps * mask).sum(-1)


def train_online_dpo(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt],
                     args: OnlineDPOArgs | None = None, gold: Reward | None = None,
                     output_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Optimize ``policy`` in place by online iterative DPO; returns the run summary."""
    args = args or OnlineDPOArgs()
    if args.ref not in REFS:
        raise ValueError(f"ref must be one of {', '.join(REFS)}, got {args.ref!r}")
    s = Session(policy, tokenizer, reward, prompts, args, gold=gold, output_dir=output_dir, name="online-dpo",
                progress=progress)
    for step in range(s.start, args.steps):
        s.maybe_evaluate(step)
        ref = s.ref if args.ref == "initial" else policy  # π₀, or π_{t−1}: no copy, its log-probs precede the update

        # 1. sample K per prompt from the current policy and score them
        ro, r = s.rollout(step, args.k)

        # 2. best vs worst pair per prompt, with reference log-probs (fixed for the iteration)
        pairs = best_worst_pairs(r, args.k)
        if not pairs:
            s.log(step, {"reward_mean": r.mean().item(), "pairs": 0})
            continue
        p_ids = [ro.prompt_ids[c] for c, _ in pairs]
        chosen = [ro.response_ids[c] for c, _ in pairs]
        rejected = [ro.response_ids[j] for _, j in pairs]
        with torch.no_grad():
            ref_c = _seq_logps(s, ref, p_ids, chosen, args.batch_size)
            ref_r = _seq_logps(s, ref, p_ids, rejected, args.batch_size)

        # 3. DPO on the pairs
        policy.train()
        losses, accs = [], []
        for epoch in range(args.epochs):
            for idx in minibatches(len(pairs), args.minibatch_size, step_seed(args.seed, step, 10 + epoch)):
                pc = _seq_logps(s, policy, [p_ids[i] for i in idx], [chosen[i] for i in idx])
                pr = _seq_logps(s, policy, [p_ids[i] for i in idx], [rejected[i] for i in idx])
                loss = dpo_loss(pc, pr, ref_c[idx], ref_r[idx], args.beta).mean()
                s.update(loss)
                losses.append(loss.item())
                accs.append(((pc - ref_c[idx]) > (pr - ref_r[idx])).float().mean().item())
        policy.eval()

        s.log(step, {"reward_mean": r.mean().item(), "pairs": len(pairs),
                     "reward_gap": (r[[c for c, _ in pairs]] - r[[j for _, j in pairs]]).mean().item(),
                     "dpo_loss": sum(losses) / len(losses), "implicit_acc": sum(accs) / len(accs)})
        s.maybe_checkpoint(step + 1)
    losses = [r["dpo_loss"] for r in s.rows if "dpo_loss" in r]
    if losses and max(abs(x - math.log(2)) for x in losses) < 1e-3:  # −log σ(0): the log-ratios never moved
        s.warnings.append(f"the DPO loss stayed at ln 2 = {math.log(2):.4f} in every iteration: the policy did not "
                          f"move from its reference at --lr {args.lr:g} (5e-7 suits 7B models; small policies "
                          "need about 1e-5 to 1e-3)")
    return s.finish()
