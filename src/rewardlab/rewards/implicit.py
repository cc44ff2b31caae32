"""Implicit DPO reward: a policy and its reference *are* a reward model (Rafailov et al. 2023, "Direct Preference
Optimization: Your Language Model is Secretly a Reward Model"; Lambert et al. 2024 evaluate such "DPO RMs" in
RewardBench)::

    r(x, y) = β · [log π(y | x) − log π_ref(y | x)],    log π(y | x) = Σ_t log π(y_t | x, y_<t)

The partition term β·log Z(x) is dropped: it depends on the prompt only, so it cancels in every comparison of two
responses to the same prompt (pairwise accuracy, best-of-n, group-relative advantages) — but not across prompts.

Tokenization (shared with the DPO trainer, :mod:`rewardlab.train.dpo`): the prompt is encoded as for generation
(:func:`~rewardlab.models.generation.encode_prompts`: leading special tokens, or the chat template with the
generation prompt); the response is its text (for conversations: the template's rendering of the assistant turn)
followed by eos, i.e. scored as a finished answer. Over ``max_length`` the prompt is cut from the left, then the
response at its end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.data.tokenize import TruncationStats, render
from rewardlab.errors import UserError
from rewardlab.models.backbone import load_causal_lm
from rewardlab.models.generation import encode_prompts, sequence_logprobs

MANIFEST = "rewardlab_dpo.json"


def implicit_reward(logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """``β·(log π(y|x) − log π_ref(y|x))`` from sequence log-probs ``[n]`` → ``[n]``."""
    return beta * (logps - ref_logps)


def policy_inputs(tokenizer, prompt: Prompt, response: Response, max_length: int | None = None,
                  stats: TruncationStats | None = None) -> tuple[list[int], list[int]]:
    """``(prompt_ids, response_ids)`` for log-prob scoring/training (see the module docstring); truncations are
    counted in ``stats`` when given."""
    if isinstance(prompt, str) and isinstance(response, str):
        text = response
    else:
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}] if prompt else []
        _, text, _ = render(tokenizer, prompt, response)
    p_ids = encode_prompts(tokenizer, [prompt])[0]
    r_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    if tokenizer.eos_token_id is not None:
        r_ids.append(int(tokenizer.eos_token_id))
    if stats is not None:
        stats.items += 1
    if max_length is not None and len(p_ids) + len(r_ids) > max_length:
        if stats is not None:
            stats.response_truncated += len(r_ids) > max_length - 1
            stats.prompt_truncated += len(p_ids) > max(1, max_length - len(r_ids))
        r_ids = r_ids[: max(1, max_length - 1)]
        p_ids = p_ids[len(p_ids) - max(1, max_length - len(r_ids)):]
    return p_ids, r_ids


@torch.no_grad()
def sequence_logps(model, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_id: int,
                   batch_size: int = 16) -> torch.Tensor:
    """``Σ_t log π(y_t | x, y_<t)`` per item ``[n]`` (float32, CPU), in length-sorted batches, input order kept."""
    n = len(prompt_ids)
    out = torch.empty(n, dtype=torch.float32)
    order = sorted(range(n), key=lambda i: -(len(prompt_ids[i]) + len(response_ids[i])))
    for s in range(0, n, batch_size):
        idx = order[s : s + batch_size]
        logps, mask = sequence_logprobs(model, [prompt_ids[i] for i in idx], [response_ids[i] for i in idx], pad_id)
        out[idx] = (logps * mask).sum(-1).float().cpu()
    return out


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
        """Load a policy directory; the reference and β default to those in its ``rewardlab_dpo.json`` (written by
        ``rewardlab train --objective dpo``; a relative reference path is relative to the policy directory)."""
        policy_dir = Path(policy_dir)
        info: dict[str, Any] = {}
        if (policy_dir / MANIFEST).exists():
            info = json.loads((policy_dir / MANIFEST).read_text())
        if reference_dir is None:
            if "reference" not in info:
                raise UserError(f"{policy_dir}: no {MANIFEST} naming the reference; use dpo:POLICY:REFERENCE")
            reference_dir = policy_dir / info["reference"]
        beta = float(info.get("beta", 0.1)) if beta is None else beta
        policy, tokenizer = load_causal_lm(policy_dir, device or "cpu")
        reference, _ = load_causal_lm(reference_dir, device or "cpu")
        kwargs.setdefault("name", f"dpo:{policy_dir.name}")
        kwargs.setdefault("max_length", info.get("max_length", 1024))
        return cls(policy, reference, tokenizer, beta=beta, **kwargs)

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
