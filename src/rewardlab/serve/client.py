"""Client side of the reward server: the HTTP client, :class:`RemoteReward`, and a TRL reward-function adapter.

``RewardClient`` and ``RemoteReward`` live in :mod:`rewardlab.rewards.remote` (a Reward implementation, usable by
every stage); they are re-exported here. :func:`make_reward_func` turns a local Reward or a server URL into the
function TRL's ``GRPOTrainer`` / ``RLOOTrainer`` call as ``reward_func(prompts=..., completions=...,
completion_ids=..., **dataset_columns_and_trainer_state) -> list[float]`` (trl 1.16, ``_calculate_rewards``).
Conversational prompts are message lists and conversational completions ``[{"role": "assistant", ...}]``; both
are scored through the reward's chat template, exactly like offline conversational scoring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from rewardlab.rewards.remote import RemoteError, RemoteReward, RewardClient

__all__ = ["RemoteError", "RemoteReward", "RewardClient", "make_reward_func"]


def make_reward_func(reward_or_url: Any, token: str | None = None, name: str | None = None,
                     **remote_kwargs) -> Callable[..., list[float]]:
    """A TRL reward function backed by a Reward object, or by a server URL (``http://...``, native protocol).

    Multi-output rewards (``[n, k]``) are reduced to one number per completion with the mean over outputs.
    Non-finite scores become ``None`` (TRL turns them into NaN and ignores
    them when another reward function scored the row).
    """
    reward = RemoteReward(reward_or_url, token=token, **remote_kwargs) if isinstance(reward_or_url, str) \
        else reward_or_url

    def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if not prompts:
            return []
        scores = reward.score(list(prompts), list(completions))
        if scores.ndim == 2:
            scores = scores.mean(dim=1)
        return [v if math.isfinite(v) else None for v in scores.tolist()]

    reward_func.__name__ = name or f"rewardlab_{getattr(reward, 'name', type(reward).__name__)}".replace(":", "_")
    reward_func.reward = reward  # the underlying Reward, for inspection and closing
    return reward_func
