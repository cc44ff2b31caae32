"""RewardModel = any HF backbone + a head on a pooled hidden state.

Pooling ``last`` takes the hidden state of the **last non-pad token**, located from ``attention_mask`` — never from
``pad_token_id`` (pad may equal eos) and without assuming a padding side. Position ids are derived from the mask,
``position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)``, because GPT-2-style models do not, and a
left-padded batch would otherwise score differently from one-at-a-time scoring. Imported transformers decoder
classifiers set ``skip_token_id`` to their ``pad_token_id``: transformers reads the rightmost token that is not pad,
so when pad equals eos (TRL pads with eos when a tokenizer has no pad token) a trailing eos is skipped, and so is it
here, in the text but never in padding.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

POOLINGS = ("last", "cls", "mean")
# Bidirectional encoders are pooled by mean (how sentence encoders such as MiniLM were trained); decoders by last token.
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "mpnet",
                 "albert", "camembert", "modernbert"}
HEADS = ("linear", "mlp")  # plus "native": the model's own transformers head


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
    ``head_bias=False`` is the linear ``score`` head of transformers' decoder ``*ForSequenceClassification`` models
    (the BT loss is shift-invariant, so a bias only matters with reward centering).

    ``head="native"`` wraps a whole transformers ``*ForSequenceClassification`` model as ``backbone`` and returns its
    logits: the architecture's own head (BERT's pooler + classifier, RoBERTa's classification head, ...) and its
    own pooling. It is used for encoders, which pool the first token; decoders are imported as base model + linear
    ``score`` head with last-token pooling from the mask (HF's decoder pooling reads ``pad_token_id``).

    Encoders (bidirectional, :func:`is_encoder`) get their batches right-aligned and compute their own position ids
    (RoBERTa-style models start positions at ``padding_idx + 1``; mask-derived ids would shift them), and
    ``token_type_ids`` derived from the ids: segment 1 starts after the first ``segment_sep_id`` (BERT's
    ``[CLS] p [SEP] r [SEP]``). Decoders get mask-derived position ids so left padding scores like no padding.

    ``output_mean``/``output_std`` (OpenRLHF's ``normalize_reward``) map eval-mode rewards to ``(r - mean) / std``.
    """

    def __init__(self, backbone: nn.Module, num_outputs: int = 1, pooling: str = "last", head: str = "linear",
                 head_bias: bool = True, segment_sep_id: int | None = None,
                 output_mean: float | None = None, output_std: float | None = None,
                 skip_token_id: int | None = None):
        super().__init__()
        if head not in HEADS + ("native",):
            raise ValueError(f"unknown head {head!r}; choose from {HEADS}")
        if head == "native":
            pooling = "native"
        elif pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
        self.backbone = backbone
        self.num_outputs = num_outputs
        self.pooling = pooling
        self.head_type = head
        self.head_bias = head_bias
        self.segment_sep_id = segment_sep_id
        self.output_mean, self.output_std = output_mean, output_std
        self.skip_token_id = skip_token_id if pooling == "last" else None
        self.rendering = None  # a data.tokenize.Rendering: how inputs become ids (set by loaders and build_model)
        hidden = _hidden_size(backbone.config)
        if head == "linear":
            self.head = nn.Linear(hidden, num_outputs, bias=head_bias)
        elif head == "mlp":
            self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, num_outputs))
        else:
            self.head = None
        self.encoder = is_encoder(backbone.config)
        forward = getattr(backbone, "forward", None)
        params = inspect.signature(forward).parameters if forward is not None else {}
        self._takes_position_ids = "position_ids" in params and not self.encoder
        self._takes_token_types = ("token_type_ids" in params and segment_sep_id is not None
                                   and getattr(backbone.config, "type_vocab_size", 0) > 1)

    @property
    def config(self):
        return self.backbone.config

    def _backbone(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Run the backbone with the inputs its family needs; returns ``(output, attention_mask)``."""
        kwargs = {}
        if self.encoder:
            input_ids, attention_mask = right_align(input_ids, attention_mask)
        if self._takes_position_ids:
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if self._takes_token_types:
            sep = (input_ids == self.segment_sep_id).long()
            kwargs["token_type_ids"] = ((sep.cumsum(-1) - sep) > 0).long() * attention_mask.long()
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs), attention_mask

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled hidden states ``[b, h]`` (what the head reads); not defined for ``head="native"``."""
        if self.head is None:
            raise ValueError("a native transformers head pools internally: no features")
        out, attention_mask = self._backbone(input_ids, attention_mask)
        if self.skip_token_id is not None:  # the last real token that is not skip_token_id (transformers' rule)
            read = attention_mask * (input_ids != self.skip_token_id)
            first = (attention_mask.cumsum(-1) == 1) & attention_mask.bool()  # a row of nothing else: position 0
            attention_mask = torch.where(read.any(-1, keepdim=True), read, first.to(read.dtype))
        return pool(out.last_hidden_state, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                packed=None) -> torch.Tensor:
        """Rewards ``[b, k]`` of a padded batch, or with ``packed`` (a :class:`rewardlab.models.packing.Packed`)
        of the sequences packed in it, in their order (see :meth:`forward_packed`). A keyword, so that wrappers
        (DDP, accelerate) see every forward."""
        if packed is not None:
            rewards = self.forward_packed(packed)
        elif self.head is None:
            rewards = self._backbone(input_ids, attention_mask)[0].logits.float()
        else:
            pooled = self.features(input_ids, attention_mask)
            rewards = self.head(pooled.to(self.head_weight_dtype)).float()
        if self.output_std is not None and not self.training:
            rewards = (rewards - self.output_mean) / self.output_std
        return rewards

    def packable(self, max_length: int | None = None) -> tuple[bool, str]:
        """Whether :meth:`forward_packed` is exact for this model (a decoder family whose attention takes a custom
        mask, see :func:`rewardlab.models.packing.supports_packing`), and if not, why."""
        if self.head is None or self.encoder or self.pooling != "last":
            return False, "only last-token-pooled decoders share prompts (encoders see the whole sequence)"
        if not self._takes_position_ids:
            return False, f"{type(self.backbone).__name__} takes no position_ids"
        from rewardlab.models.packing import supports_packing

        return supports_packing(self.backbone, max_length)

    def forward_packed(self, packed) -> torch.Tensor:
        """Rewards ``[n, k]`` of the sequences packed in ``packed`` (:func:`rewardlab.models.packing.pack`), in their
        input order, before ``output_mean``/``output_std`` (which :meth:`forward` applies to both paths): equal to the
        padded forward on them one by one when :meth:`packable` says so."""
        attn = getattr(self.backbone.config, "_attn_implementation", None)
        if attn == "sdpa":
            mask = packed.attention_mask  # boolean: True = attend
        else:  # eager adds the mask to the scores
            mask = packed.additive_mask(next(self.backbone.parameters()).dtype)
        out = self.backbone(input_ids=packed.input_ids, attention_mask=mask, position_ids=packed.position_ids)
        hidden = out.last_hidden_state.flatten(0, 1)[packed.read]
        return self.head(hidden.to(self.head_weight_dtype)).float()

    @property
    def head_weight_dtype(self) -> torch.dtype:
        return next(self.head.parameters()).dtype

    def spec(self) -> dict:
        """What the checkpoint manifest needs to rebuild this model around a backbone."""
        spec = {"num_outputs": self.num_outputs, "pooling": self.pooling, "head": self.head_type}
        if not self.head_bias:
            spec["head_bias"] = False
        if self.segment_sep_id is not None:
            spec["segment_sep_id"] = self.segment_sep_id
        if self.output_std is not None:
            spec["output_mean"], spec["output_std"] = self.output_mean, self.output_std
        if self.skip_token_id is not None:
            spec["skip_token_id"] = self.skip_token_id
        return spec

    @classmethod
    def from_spec(cls, backbone: nn.Module, spec: dict) -> RewardModel:
        return cls(backbone, num_outputs=spec["num_outputs"], pooling=spec["pooling"], head=spec["head"],
                   head_bias=spec.get("head_bias", True), segment_sep_id=spec.get("segment_sep_id"),
                   output_mean=spec.get("output_mean"), output_std=spec.get("output_std"),
                   skip_token_id=spec.get("skip_token_id"))


def right_align(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every row's real tokens to the start (pads to the end), keeping their order. A no-op when the batch is
    already right-padded (the common case: no copy is made)."""
    mask = attention_mask.bool()
    if not bool((mask[:, 1:] & ~mask[:, :-1]).any()):  # no 0 -> 1 step: already right-padded
        return input_ids, attention_mask
    order = torch.sort((~mask).to(torch.int8), dim=-1, stable=True).indices
    return input_ids.gather(-1, order), attention_mask.gather(-1, order)


def is_encoder(config) -> bool:
    """True for bidirectional encoders (BERT, RoBERTa, DeBERTa, MiniLM, ...): not decoders, not encoder-decoders."""
    if getattr(config, "is_decoder", False):
        return False
    return getattr(config, "model_type", "") in ENCODER_TYPES


def _hidden_size(config) -> int:
    for name in ("hidden_size", "n_embd", "d_model", "dim"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    text = getattr(config, "text_config", None)
    if text is not None:
        return _hidden_size(text)
    raise ValueError(f"cannot find the hidden size in {type(config).__name__}")
