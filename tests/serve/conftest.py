"""Fixtures for the serve tests: a tiny model reward (1 and 2 outputs) and a function reward."""

from __future__ import annotations

import pytest

from rewardlab.rewards.base import FunctionReward


@pytest.fixture(scope="session")
def model_reward(tokenizer):
    from rewardlab.models.tiny import tiny_reward_model
    from rewardlab.rewards.model import ModelReward

    return ModelReward(tiny_reward_model(tokenizer, seed=0), tokenizer, max_length=64, batch_size=8,
                       manifest={"normalization": {"mean": 0.25, "std": 2.0}}, name="tiny")


@pytest.fixture(scope="session")
def model_reward_2(tokenizer):
    from rewardlab.models.tiny import tiny_reward_model
    from rewardlab.rewards.model import ModelReward

    return ModelReward(tiny_reward_model(tokenizer, num_outputs=2, seed=1), tokenizer, max_length=64, name="tiny2")


def text_length(prompt, response) -> float:
    """A verifiable reward with a known value: characters in the response (conversations: summed contents)."""
    if isinstance(response, str):
        return float(len(response))
    return float(sum(len(m["content"]) for m in response))


@pytest.fixture
def fn_reward():
    return FunctionReward(text_length, name="length")
