"""A tiny model reward for the integration tests (scored locally and behind a live server)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def model_reward(tokenizer):
    from rewardlab.models.tiny import tiny_reward_model
    from rewardlab.rewards.model import ModelReward

    return ModelReward(tiny_reward_model(tokenizer, seed=0), tokenizer, max_length=64, batch_size=8, name="tiny")
