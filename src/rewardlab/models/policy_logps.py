"""A causal LM's log-probability of a response: the inputs and sums the DPO trainer (:mod:`rewardlab.train.dpo`) and
the implicit DPO reward (:mod:`rewardlab.rewards.implicit`) share, so a pair is tokenized the same way in training and
in scoring.

Tokenization: the prompt is encoded as for generation (:func:`~rewardlab.models.generation.encode_prompts`: leading
special tokens, or the chat template with the generation prompt); the response is its text (for conversations: the
template's rendering of the assistant turn) followed by eos, i.e. scored as a finished answer. Over ``max_length``
the prompt is cut from the left, then the response at its end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.data.tokenize import TruncationStats, render
from rewardlab.models.generation import encode_prompts, sequence_logprobs


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
