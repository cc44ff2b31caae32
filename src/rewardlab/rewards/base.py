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
- ``uses_columns = True``: ``score(..., columns={name: [one value per item]})`` takes extra per-item dataset
  columns (a TRL dataset's ``solution``, verl's ``data_source``/``extra_info``); only batched Python functions do.
- ``attribute_names: list[str]``: a multi-objective reward's named outputs, ``attributes(prompts, responses) ->
  [n, k]`` with column j the score of attribute ``attribute_names[j]`` (ArmoRM's regression heads, a DPA reward's
  base, a k-output checkpoint whose manifest names its ``attributes``). Read with :func:`attribute_names`.
- ``member_names: list[str]``: a reward made of members (an ensemble): ``score_members(prompts, responses) -> [n, m]``
  gives the member columns the reward aggregates and ``aggregate_members(scores [n, m]) -> [n]`` aggregates them,
  so ``score == aggregate_members(score_members(...))`` from one pass. Read with :func:`member_names`.
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


def attribute_names(reward: Any) -> list[str] | None:
    """The names of ``reward``'s per-attribute outputs (declared with ``attribute_names``), or None."""
    names = getattr(reward, "attribute_names", None)
    return list(names) if names else None


def member_names(reward: Any) -> list[str] | None:
    """The names of ``reward``'s member columns (declared with ``member_names``), or None for a reward without
    members."""
    names = getattr(reward, "member_names", None)
    return list(names) if names else None


def clean_label(label: Any) -> Any:
    """A dataset label, or None when unused (OpenRLHF sends ``""`` or ``null`` for "no label")."""
    return None if label is None or label == "" else label


def uses_columns(reward: Any) -> bool:
    """True when ``reward.score`` takes ``columns=`` (declared with ``uses_columns``)."""
    return bool(getattr(reward, "uses_columns", False))


def score_with_labels(reward: Any, prompts: Sequence[Prompt], responses: Sequence[Response],
                      labels: Sequence[Any] | None = None, columns: dict[str, Sequence[Any]] | None = None
                      ) -> torch.Tensor:
    """``reward.score``, with ``labels`` passed only when the reward uses them and at least one is given, and
    ``columns`` only when the reward takes them."""
    kwargs: dict[str, Any] = {}
    if labels is not None and uses_labels(reward) and any(clean_label(x) is not None for x in labels):
        if len(labels) != len(prompts):
            raise ValueError(f"{len(labels)} labels for {len(prompts)} items")
        kwargs["labels"] = [clean_label(x) for x in labels]
    if columns and uses_columns(reward):
        kwargs["columns"] = dict(columns)
    return reward.score(prompts, responses, **kwargs)


BATCH_PARAMETERS = ("prompts", "completions")  # TRL's keyword names for a batched reward function


def _parameters(fn: Callable) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return None


def _takes_label(fn: Callable) -> bool:
    return "label" in (_parameters(fn) or {})


def is_batched_function(fn: Callable) -> bool:
    """True for a TRL-style batched reward function ``fn(prompts, completions, **kwargs) -> list[float]``.

    The rule: batched iff the signature names a parameter ``prompts`` or ``completions`` (TRL's keyword names), or
    its only parameter is ``**kwargs``. Everything else -- ``fn(prompt, response)``, ``fn(p, r, label=None)``,
    ``fn(prompt, response, **kw)``, callables without a signature -- is per-item."""
    params = _parameters(fn)
    if not params:
        return False
    if any(name in params for name in BATCH_PARAMETERS):
        return True
    return all(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class FunctionReward:
    """A verifiable reward from a Python callable: per-item or batched (:func:`is_batched_function`).

    Per-item: ``fn(prompt, response) -> float`` once per item; a ``label`` parameter, ``fn(prompt, response,
    label=None)``, also gets each item's dataset label (``None`` when the caller has none) and the reward declares
    ``uses_labels``.

    Batched (TRL's reward-function convention): ``fn(prompts=[...], completions=[...], **extra) -> list[float |
    None]``, once per ``score`` call, keyword arguments only. ``extra`` holds ``labels=[...]`` (one label per item)
    when the caller has labels, and the caller's extra per-item ``columns`` by their names; each keyword is passed
    only if the signature takes it (a parameter of that name, or ``**kwargs``). The reward declares ``uses_labels``
    and ``uses_columns`` accordingly. ``None`` scores become NaN."""

    num_outputs = 1

    def __init__(self, fn: Callable[..., Any], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")
        self.batched = is_batched_function(fn)
        params = _parameters(fn) or {}
        self._any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._parameter_names = frozenset(params)
        self.uses_labels = self._accepts("labels") if self.batched else _takes_label(fn)
        self.uses_columns = self.batched

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response], labels: Sequence[Any] | None = None,
              columns: dict[str, Sequence[Any]] | None = None) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if labels is not None and len(labels) != len(prompts):
            raise ValueError(f"{len(labels)} labels for {len(prompts)} items")
        if self.batched:
            values = self._score_batched(prompts, responses, labels, columns or {})
        elif self.uses_labels:
            labels = labels if labels is not None else [None] * len(prompts)
            values = [self.fn(p, r, label=clean_label(y)) for p, r, y in zip(prompts, responses, labels)]
        else:
            values = [self.fn(p, r) for p, r in zip(prompts, responses)]
        return torch.tensor([float("nan") if v is None else float(v) for v in values], dtype=torch.float32)

    def _accepts(self, keyword: str) -> bool:
        return self._any_keyword or keyword in self._parameter_names

    def _score_batched(self, prompts, responses, labels, columns) -> list:
        kwargs = {key: list(v) for key, v in columns.items() if key not in ("prompts", "completions", "labels")}
        kwargs.update(prompts=list(prompts), completions=list(responses))
        if labels is not None:
            kwargs["labels"] = [clean_label(y) for y in labels]
        for key, v in kwargs.items():
            if len(v) != len(prompts):
                raise ValueError(f"column {key!r} has {len(v)} values for {len(prompts)} items")
        values = list(self.fn(**{key: v for key, v in kwargs.items() if self._accepts(key)}))
        if len(values) != len(prompts):
            raise ValueError(f"batched reward function {self.name!r} returned {len(values)} scores "
                             f"for {len(prompts)} items")
        return values
