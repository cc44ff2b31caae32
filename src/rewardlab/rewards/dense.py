"""Dense (per-step) rewards for RL: step rewards placed on tokens, and per-token returns.

Fine-Grained RLHF (Wu et al. 2023) gives each segment's reward at the segment's **last token** and zero elsewhere:
``r_t = Σ_j R_j · [t = e_j]`` for step rewards ``R_j`` ending at token ``e_j``. A REINFORCE / RLOO loop with per-step
returns then weights each token's log-probability by its return-to-go

    G_t = Σ_{t' ≥ t} γ^(t' − t) · r_t'        (γ = 1: the sum of the rewards of this and every later step)

so a token is credited only with the steps at or after it. These are pure functions on one sequence; mapping a
PRM's steps (character spans from :func:`rewardlab.data.stepwise.step_spans`) onto the policy's tokens is
:func:`token_ends_for_spans`. ``rewardlab optimize rloo --dense`` (:mod:`rewardlab.optimize.rloo`) uses them with a
per-token KL penalty and the leave-one-out baseline of the group's totals.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch


def _check(step_rewards: Sequence[float], step_token_ends: Sequence[int], n_tokens: int) -> None:
    if len(step_rewards) != len(step_token_ends):
        raise ValueError(f"{len(step_rewards)} step rewards but {len(step_token_ends)} step ends")
    for j, (r, e) in enumerate(zip(step_rewards, step_token_ends)):
        if math.isnan(float(r)):
            raise ValueError(f"step reward {j} is NaN (a step the PRM did not score, e.g. dropped by truncation): "
                             "fill it before computing returns")
        if not 0 <= int(e) < n_tokens:
            raise ValueError(f"step {j} ends at token {e}, outside 0..{n_tokens - 1}")
        if j and int(e) < int(step_token_ends[j - 1]):
            raise ValueError(f"step ends must not decrease (step {j} ends at {e}, before step {j - 1})")


def step_token_rewards(step_rewards: Sequence[float], step_token_ends: Sequence[int], n_tokens: int) -> torch.Tensor:
    """``r [n_tokens]``: each step's reward on its last token, 0 elsewhere (two steps ending on one token add)."""
    _check(step_rewards, step_token_ends, n_tokens)
    r = torch.zeros(n_tokens, dtype=torch.float32)
    for value, end in zip(step_rewards, step_token_ends):
        r[int(end)] += float(value)
    return r


def step_returns(step_rewards: Sequence[float], step_token_ends: Sequence[int], n_tokens: int,
                 gamma: float = 1.0) -> torch.Tensor:
    """Per-token returns ``G [n_tokens]``, ``G_t = r_t + γ·G_{t+1}`` with ``r`` from :func:`step_token_rewards`.

    Example: rewards ``[1, −1]`` ending at tokens ``[1, 3]`` of 5, γ = 1 → ``r = [0, 1, 0, −1, 0]``,
    ``G = [0, 0, −1, −1, 0]``; γ = 0.5 → ``G = [0.375, 0.75, −0.5, −1, 0]``.
    """
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    r = step_token_rewards(step_rewards, step_token_ends, n_tokens)
    g = torch.zeros_like(r)
    running = 0.0
    for t in range(n_tokens - 1, -1, -1):
        running = float(r[t]) + gamma * running
        g[t] = running
    return g


def token_ends_for_spans(token_char_ends: Sequence[int], step_char_ends: Sequence[int]) -> list[int]:
    """The token each step ends on: for each step's end character offset ``c`` (exclusive, as in
    :func:`~rewardlab.data.stepwise.step_spans`), the first token whose end offset is ``≥ c`` — the token holding
    the step's last character. ``token_char_ends[t]`` is token t's exclusive end offset in the response text
    (increasing; a tokenizer's ``offset_mapping`` gives it). A step ending after the last token maps to the last."""
    ends = list(token_char_ends)
    if not ends:
        raise ValueError("no tokens")
    return [min(bisect.bisect_left(ends, c), len(ends) - 1) for c in step_char_ends]
