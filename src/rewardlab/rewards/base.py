"""The one interface every later stage consumes: a reward source.

A trained :class:`~rewardlab.rewards.model.ModelReward`, an ensemble, a remote HTTP server, a Python function, an
implicit DPO reward and the lab's gold reward all implement :class:`Reward`. Evaluation, optimization and the server
take any ``Reward``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch

from rewardlab.data.records import Prompt, Response


@runtime_checkable
class Reward(Protocol):
    """Scores (prompt, response) pairs.

    ``score`` returns a float tensor of shape ``[n]`` (one scalar per item) or ``[n, k]`` for rewards with several
    outputs (multi-objective heads, ensemble members). Implementations must be deterministic for a fixed input and
    independent of batch composition.
    """

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor: ...


class FunctionReward:
    """A verifiable reward: any Python callable ``fn(prompt, response) -> float`` (DESIGN §1)."""

    num_outputs = 1

    def __init__(self, fn: Callable[[Prompt, Response], float], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return torch.tensor([float(self.fn(p, r)) for p, r in zip(prompts, responses)], dtype=torch.float32)
