"""The model of a MiCRo-style mixture reward model: K reward heads + a context router on one backbone (the rewards,
losses and training are :mod:`rewardlab.rewards.personalized`'s; the checkpoint format is
:mod:`rewardlab.models.formats.micro`)."""

from __future__ import annotations

import torch
from torch import nn

from rewardlab.models.reward_model import RewardModel


class MixtureRewardModel(nn.Module):
    """K reward heads + a context router on one backbone. ``heads(ids, mask) -> [b, K]``,
    ``route(context_ids, context_mask) -> router logits [b, K]``."""

    def __init__(self, reward_model: RewardModel):
        super().__init__()
        self.rm = reward_model
        self.k = reward_model.num_outputs
        self.router = nn.Linear(_hidden(reward_model), self.k)
        nn.init.zeros_(self.router.weight)
        nn.init.zeros_(self.router.bias)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.rm.features(input_ids, attention_mask).float()

    def heads(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.rm(input_ids, attention_mask)

    def route(self, context_ids: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        return self.router(self.features(context_ids, context_mask))


def _hidden(rm: RewardModel) -> int:
    head = rm.head if isinstance(rm.head, nn.Linear) else rm.head[0]
    return head.in_features
