"""SuperHF (Mukobi et al. 2023, "SuperHF: Supervised Iterative Learning from Human Feedback"), cleanrl-style.

Each iteration: sample a "superbatch" of K completions per prompt from the current policy, keep the one the reward
ranks best (top-1 filtering, as RAFT), and fine-tune on the kept completions with the supervised loss plus a KL
prior to the reference (initial) model,

    L = CE(π; kept completions) + β · KL(π ‖ π_ref)        (:func:`rewardlab.optimize.losses.superhf_loss`)

the KL taken exactly over the vocabulary at every token of the kept completions. Repeat. With β = 0 this is RAFT
(``rewardlab optimize raft``, same loop: :func:`rewardlab.optimize.raft.reward_ranked_loop`). Defaults follow the
paper's: K = 16 completions per prompt, β = 0.35. With ``--lora-r`` the reference is the policy with its adapter
off (as the authors', whose KL term requires LoRA); otherwise a frozen copy of the initial policy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.generation import Rollout, response_logits
from rewardlab.optimize.losses import superhf_loss
from rewardlab.optimize.raft import RAFTArgs, reward_ranked_loop
from rewardlab.optimize.session import Session
from rewardlab.rewards.base import Reward


@dataclass
class SuperHFArgs(RAFTArgs):
    k: int = 16  # completions per prompt (the paper's superbatch)
    kl_coef: float = 0.35  # β of the KL prior


def superhf_step(s: Session, kept: Rollout, idx: list[int], kl_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """SuperHF's loss on a minibatch of the kept completions, with its cross-entropy and KL parts."""
    prompts, responses = [kept.prompt_ids[i] for i in idx], [kept.response_ids[i] for i in idx]
    logits, targets, mask = response_logits(s.policy, prompts, responses, s.pad_id)
    with torch.no_grad():
        ref_logits, _, _ = response_logits(s.ref, prompts, responses, s.pad_id)
    loss, ce, kl = superhf_loss(logits, ref_logits, targets, mask.to(logits.dtype), kl_coef)
    return loss, {"loss": loss.item(), "ce": ce.item(), "kl": kl.item()}


def train_superhf(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: SuperHFArgs | None = None,
                  gold: Reward | None = None, output_dir: str | os.PathLike | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Optimize ``policy`` in place by SuperHF; returns the run summary."""
    args = args or SuperHFArgs()
    if args.kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {args.kl_coef}")
    s = Session(policy, tokenizer, reward, prompts, args, gold=gold, output_dir=output_dir, name="superhf",
                progress=progress)
    return reward_ranked_loop(s, args, lambda s, kept, idx: superhf_step(s, kept, idx, args.kl_coef))
