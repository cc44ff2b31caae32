"""RewardModel = any HF backbone + a head on a pooled hidden state (DESIGN §3).

Pooling ``last`` takes the hidden state of the **last non-pad token**, located from ``attention_mask`` — never from
``pad_token_id`` (pad may equal eos) and without assuming a padding side. Position ids are derived from the mask,
``position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)``, because GPT-2-style models do not, and a
left-padded batch would otherwise score differently from one-at-a-time scoring.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

POOLINGS = ("last", "cls", "mean")
HEADS = ("linear", "mlp")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position whose mask is 1, per row. Works for left, right or no padding. Shape [b]."""
    length = attention_mask.shape[-1]
    positions = torch.arange(length, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), positions, -1).max(dim=-1).values.clamp(min=0)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool hidden states ``[b, t, h]`` into ``[b, h]``."""
    if pooling == "last":
        idx = last_token_index(attention_mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]
    if pooling == "cls":
        first = (attention_mask.cumsum(-1) == 1).float().argmax(-1)  # first real token, whatever the padding
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")


class RewardModel(nn.Module):
    """Backbone (an HF ``AutoModel``, causal LM body or encoder) + head: ``r = head(pool(h))``, shape ``[b, k]``.

    ``num_outputs`` k > 1 gives a multi-objective head or an ensemble-in-one-model. ``head="mlp"`` uses a 2-layer MLP.
    """

    def __init__(self, backbone: nn.Module, num_outputs: int = 1, pooling: str = "last", head: str = "linear"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose from {HEADS}")
        self.backbone = backbone
        self.num_outputs = num_outputs
        self.pooling = pooling
        self.head_type = head
        hidden = _hidden_size(backbone.config)
        if head == "linear":
            self.head = nn.Linear(hidden, num_outputs)
        else:
            self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, num_outputs))
        forward = getattr(backbone, "forward", None)
        self._takes_position_ids = forward is not None and "position_ids" in inspect.signature(forward).parameters

    @property
    def config(self):
        return self.backbone.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kwargs = {}
        if self._takes_position_ids:
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
        return self.head(pooled.to(self.head_weight_dtype)).float()

    @property
    def head_weight_dtype(self) -> torch.dtype:
        return next(self.head.parameters()).dtype

    def spec(self) -> dict:
        """What the checkpoint manifest needs to rebuild this model around a backbone."""
        return {"num_outputs": self.num_outputs, "pooling": self.pooling, "head": self.head_type}


def _hidden_size(config) -> int:
    for name in ("hidden_size", "n_embd", "d_model", "dim"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    text = getattr(config, "text_config", None)
    if text is not None:
        return _hidden_size(text)
    raise ValueError(f"cannot find the hidden size in {type(config).__name__}")
