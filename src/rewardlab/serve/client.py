"""Client side of the reward server: the HTTP client, :class:`RemoteReward`, and a TRL reward-function adapter.

``RewardClient`` and ``RemoteReward`` live in :mod:`rewardlab.rewards.remote` (a Reward implementation, usable by
every stage); they are re-exported here. :func:`make_reward_func` turns a Reward, a reward spec (a directory,
``python:MOD:FN``, ...) or a server URL into the function TRL's ``GRPOTrainer`` / ``RLOOTrainer`` call as
``reward_func(prompts=..., completions=..., completion_ids=..., **dataset_columns_and_trainer_state) ->
list[float]`` (trl 1.16, ``_calculate_rewards``).
Conversational prompts are message lists and conversational completions ``[{"role": "assistant", ...}]``; both
are scored through the reward's chat template, exactly like offline conversational scoring.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from rewardlab.rewards.base import score_with_labels
from rewardlab.rewards.remote import RemoteError, RemoteReward, RewardClient

__all__ = ["RemoteError", "RemoteReward", "RewardClient", "make_reward_func"]


TRL_PLUMBING = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})  # not per-item columns


def make_reward_func(reward_or_spec: Any, token: str | None = None, name: str | None = None,
                     label_column: str | None = None, device: str | None = None,
                     **remote_kwargs) -> Callable[..., list[float | None]]:
    """A TRL reward function backed by a Reward object, a reward spec, or a server URL.

    ``reward_or_spec``: a Reward object; a string starting with ``http://`` or ``https://`` -> a rewardlab server
    (native protocol; bearer ``token``, else ``$REWARDLAB_TOKEN``; ``remote_kwargs`` go to :class:`RewardClient`);
    any other string or path -> :func:`rewardlab.rewards.registry.load_reward` on ``device`` (a checkpoint or HF
    RM directory, ``python:MOD:FN``, ``rule:``, ``ensemble:``, ``openrlhf+http://``, ...).

    TRL passes every other dataset column as a keyword list (one value per completion). ``label_column`` names the
    column holding each row's label (the reference answer of ``rule:exact``/``rule:numeric``, a ``label``
    parameter of a ``python:`` function); all columns reach rewards that take columns (batched ``python:``
    functions get them by name). Multi-output rewards (``[n, k]``) are reduced to one number per completion with
    the mean over outputs. Non-finite scores become ``None`` (TRL turns them into NaN and ignores them when another
    reward function scored the row).
    """
    if isinstance(reward_or_spec, str) and reward_or_spec.startswith(("http://", "https://")):
        reward = RemoteReward(reward_or_spec, token=token or os.environ.get("REWARDLAB_TOKEN"), **remote_kwargs)
    elif isinstance(reward_or_spec, (str, os.PathLike)):
        if remote_kwargs:
            raise TypeError(f"{sorted(remote_kwargs)} apply to a server URL, not to the spec {reward_or_spec!r}")
        from rewardlab.rewards.registry import load_reward

        reward = load_reward(os.fspath(reward_or_spec), device=device)
    else:
        reward = reward_or_spec

    def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if not prompts:
            return []
        columns = {k: v for k, v in kwargs.items()
                   if k not in TRL_PLUMBING and isinstance(v, (list, tuple)) and len(v) == len(prompts)}
        if label_column is not None and label_column not in columns:
            raise KeyError(f"label_column {label_column!r} is not a dataset column (have {sorted(columns)})")
        labels = columns[label_column] if label_column is not None else None
        scores = score_with_labels(reward, list(prompts), list(completions), labels, columns=columns)
        if scores.ndim == 2:  # an imported classifier's aggregate (last-class log-odds), else the mean
            aggregate = getattr(reward, "aggregate", None)
            scores = aggregate(scores) if callable(aggregate) else scores.mean(dim=1)
        return [v if math.isfinite(v) else None for v in scores.tolist()]

    reward_func.__name__ = name or f"rewardlab_{getattr(reward, 'name', type(reward).__name__)}".replace(":", "_")
    reward_func.reward = reward  # the underlying Reward, for inspection and closing
    return reward_func
