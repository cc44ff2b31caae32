"""Implicit DPO reward: a policy and its reference *are* a reward model (Rafailov et al. 2023, "Direct Preference
Optimization: Your Language Model is Secretly a Reward Model"; Lambert et al. 2024 evaluate such "DPO RMs" in
RewardBench)::

    r(x, y) = β · [log π(y | x) − log π_ref(y | x)],    log π(y | x) = Σ_t log π(y_t | x, y_<t)

The partition term β·log Z(x) is dropped: it depends on the prompt only, so it cancels in every comparison of two
responses to the same prompt (pairwise accuracy, best-of-n, group-relative advantages) — but not across prompts.

Tokenization and log-probs are shared with the DPO trainer (:mod:`rewardlab.models.policy_logps`). A DPO run
directory (:data:`rewardlab.models.formats.DPO`) knows its reference and β.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.errors import UserError
from rewardlab.models.policy_logps import policy_inputs, sequence_logps


def implicit_reward(logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """``β·(log π(y|x) − log π_ref(y|x))`` from sequence log-probs ``[n]`` → ``[n]``."""
    return beta * (logps - ref_logps)


class ImplicitDPOReward:
    """``r(x, y) = β·[log π(y|x) − log π_ref(y|x)]`` as a :class:`~rewardlab.rewards.base.Reward` (shape ``[n]``).

    ``policy`` and ``reference`` are causal LMs sharing ``tokenizer``. ``score_parts`` also returns both log-probs.
    """

    num_outputs = 1

    def __init__(self, policy, reference, tokenizer, beta: float = 0.1, max_length: int | None = 1024,
                 batch_size: int = 16, name: str = "implicit-dpo"):
        self.policy, self.reference, self.tokenizer = policy.eval(), reference.eval(), tokenizer
        self.beta, self.max_length, self.batch_size, self.name = float(beta), max_length, batch_size, name
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad or 0)

    @classmethod
    def from_pretrained(cls, policy_dir: str | os.PathLike, reference_dir: str | os.PathLike | None = None,
                        beta: float | None = None, device: str | None = None, **kwargs) -> ImplicitDPOReward:
        """Load a policy directory; the reference and β default to those of its DPO run manifest (written by
        ``rewardlab train --objective dpo``; a relative reference path is relative to the policy directory)."""
        from rewardlab.models.formats import DPO

        loaded = DPO.load(policy_dir, device=device or "cpu", reference=reference_dir)
        info = loaded.manifest
        beta = float(info.get("beta", 0.1)) if beta is None else beta
        kwargs.setdefault("name", f"dpo:{Path(policy_dir).name}")
        kwargs.setdefault("max_length", info.get("max_length", 1024))
        return cls(loaded.model, loaded.parts["reference"], loaded.tokenizer, beta=beta, **kwargs)

    def encode(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> tuple[list, list]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        pairs = [policy_inputs(self.tokenizer, p, r, self.max_length) for p, r in zip(prompts, responses)]
        return [p for p, _ in pairs], [r for _, r in pairs]

    def score_parts(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> dict[str, torch.Tensor]:
        """``{"reward", "logps", "ref_logps"}``, each ``[n]``."""
        p_ids, r_ids = self.encode(prompts, responses)
        lp = sequence_logps(self.policy, p_ids, r_ids, self.pad_id, self.batch_size)
        lp_ref = sequence_logps(self.reference, p_ids, r_ids, self.pad_id, self.batch_size)
        return {"reward": implicit_reward(lp, lp_ref, self.beta), "logps": lp, "ref_logps": lp_ref}

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if not prompts:
            return torch.zeros(0)
        return self.score_parts(prompts, responses)["reward"]


def implicit_from_spec(spec: str, device: str | None = None) -> ImplicitDPOReward:
    """``dpo:POLICY_DIR[:REF_DIR[:BETA]]`` → :class:`ImplicitDPOReward`."""
    parts = spec.split(":")[1:]
    if not parts or not parts[0] or len(parts) > 3:
        raise UserError(f"reward spec {spec!r}: expected dpo:POLICY_DIR[:REF_DIR[:BETA]]")
    ref = parts[1] if len(parts) > 1 and parts[1] else None
    try:
        beta = float(parts[2]) if len(parts) > 2 else None
    except ValueError:
        raise UserError(f"reward spec {spec!r}: BETA {parts[2]!r} is not a number") from None
    return ImplicitDPOReward.from_pretrained(parts[0], ref, beta, device=device)
