"""The one interface every later stage consumes: a reward source.

A trained :class:`~rewardlab.rewards.model.ModelReward`, an ensemble, a remote HTTP server, a Python function, an
implicit DPO reward and the lab's gold reward all implement :class:`Reward`. Evaluation, optimization and the server
take any ``Reward``.

Two optional declarations a reward may make (read with the helpers below, never by probing):

- ``batch_invariant = False``: its ``score`` of an item depends on the other items of the call (a judge comparing
  responses ``against="others"``, running normalization). Default True. The server never merges such a reward's
  requests into one call (:func:`is_batch_invariant`).
- ``uses_labels = True``: ``score(prompts, responses, labels=None)`` takes one dataset label per item (OpenRLHF's
  ``labels``, e.g. a reference answer; ``None`` = no label for that item). Callers pass labels only to such rewards
  (:func:`score_with_labels`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from rewardlab.data.records import Prompt, Response


@runtime_checkable
class Reward(Protocol):
    """Scores (prompt, response) pairs.

    ``score`` returns a float tensor of shape ``[n]`` (one scalar per item) or ``[n, k]`` for rewards with several
    outputs (multi-objective heads, ensemble members). Implementations must be deterministic for a fixed input and
    independent of batch composition, unless they declare ``batch_invariant = False``.
    """

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor: ...


def is_batch_invariant(reward: Any) -> bool:
    """False when ``reward`` declares that an item's score depends on what else is in the ``score`` call."""
    return bool(getattr(reward, "batch_invariant", True))


def uses_labels(reward: Any) -> bool:
    """True when ``reward.score`` takes ``labels=`` (declared with ``uses_labels``)."""
    return bool(getattr(reward, "uses_labels", False))


def clean_label(label: Any) -> Any:
    """A dataset label, or None when unused (OpenRLHF sends ``""`` or ``null`` for "no label")."""
    return None if label is None or label == "" else label


def score_with_labels(reward: Any, prompts: Sequence[Prompt], responses: Sequence[Response],
                      labels: Sequence[Any] | None = None) -> torch.Tensor:
    """``reward.score``, with ``labels`` passed only when the reward uses them and at least one is given."""
    if labels is not None and uses_labels(reward) and any(clean_label(x) is not None for x in labels):
        if len(labels) != len(prompts):
            raise ValueError(f"{len(labels)} labels for {len(prompts)} items")
        return reward.score(prompts, responses, labels=[clean_label(x) for x in labels])
    return reward.score(prompts, responses)


def _takes_label(fn: Callable) -> bool:
    try:
        return "label" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


class FunctionReward:
    """A verifiable reward: any Python callable ``fn(prompt, response) -> float`` (DESIGN §1).

    A callable with a ``label`` parameter, ``fn(prompt, response, label=None)``, also gets each item's dataset label
    (``None`` when the caller has none); the reward then declares ``uses_labels``."""

    num_outputs = 1

    def __init__(self, fn: Callable[..., float], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")
        self.uses_labels = _takes_label(fn)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response],
              labels: Sequence[Any] | None = None) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if labels is not None and len(labels) != len(prompts):
            raise ValueError(f"{len(labels)} labels for {len(prompts)} items")
        if self.uses_labels:
            labels = labels if labels is not None else [None] * len(prompts)
            values = [self.fn(p, r, label=clean_label(y)) for p, r, y in zip(prompts, responses, labels)]
        else:
            values = [self.fn(p, r) for p, r in zip(prompts, responses)]
        return torch.tensor([float(v) for v in values], dtype=torch.float32)
