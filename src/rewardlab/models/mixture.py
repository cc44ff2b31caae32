"""The model of a MiCRo-style mixture reward model: K reward heads + a context router on one backbone, and how it
reads its inputs (:class:`MixtureEncoder`). Its training is :mod:`rewardlab.train.mixture`'s (losses in
:mod:`rewardlab.train.losses`), its Reward :mod:`rewardlab.rewards.personalized`'s, its checkpoint format
:mod:`rewardlab.models.formats.micro`'s."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rewardlab.data.records import Prompt, Response
from rewardlab.data.tokenize import PairEncoder
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


class MixtureEncoder:
    """Token ids for a mixture model, in training and scoring alike: (prompt, response) for the heads, the prompt
    alone for the router."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.pairs = PairEncoder(tokenizer, max_length=max_length, overlong="truncate")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def items(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> list[list[int]]:
        return [self.pairs.encode(p, r) for p, r in zip(prompts, responses)]

    def contexts(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        # the prompt alone, as a generation prompt (conversations through the chat template), left-truncated
        from rewardlab.models.generation import encode_prompts

        return encode_prompts(self.tokenizer, prompts, self.max_length)
