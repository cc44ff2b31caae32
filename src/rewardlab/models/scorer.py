"""Batched scoring of a pooled :class:`~rewardlab.models.reward_model.RewardModel` on (prompt, response) items.

Items are encoded with the model's :class:`~rewardlab.data.tokenize.Rendering` (:class:`PairEncoder`), sorted by
token length and batched with their neighbours (little padding); results come back in input order. Scores are
independent of batch size and composition (the pooling reads the last non-pad token from the mask).

Causal decoders whose attention takes a custom mask score **prompt-shared and packed**
(:mod:`rewardlab.models.packing`): the responses of one prompt share one pass over it, short sequences share rows;
the scores equal separate encoding (fp32, to float rounding). Other models (encoders, flash attention, sliding
windows) are scored separately, said once on stderr; ``packing="off"`` forces it. The Reward
interface on top of it is :class:`rewardlab.rewards.model.ModelReward`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardlab.data.batching import length_sorted_batches, pad_batch
from rewardlab.data.records import Prompt, Response
from rewardlab.data.tokenize import PairEncoder, Rendering
from rewardlab.models.packing import nonempty, packed_batches, packing_decision

ROW_TOKENS = 512  # packed row length: long enough to share a long prompt, short enough that masked attention is cheap


class PooledScorer:
    """``score_ids`` → ``[n]`` (one output) or ``[n, k]``. ``rendering`` defaults to ``model.rendering``, else the
    tokenizer's probed one; over-long items are truncated to ``max_length``."""

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 512, batch_size: int = 32,
                 device: str | torch.device | None = None, rendering: Rendering | None = None,
                 token_budget: int | None = None, packing: str = "auto"):
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        rendering = (rendering or getattr(model, "rendering", None)
                     or Rendering.for_tokenizer(tokenizer, decoder=not getattr(model, "encoder", False)))
        self.encoder = PairEncoder(tokenizer, max_length=self.max_length, overlong="truncate", rendering=rendering)
        self.packing = packing_decision(self.model, self.max_length, packing)

    @property
    def num_outputs(self) -> int:
        return self.model.num_outputs

    def encode(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> list[list[int]]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return [self.encoder.encode(p, r) for p, r in zip(prompts, responses)]

    def encode_text(self, text: str, prompt: str | None = None) -> list[int]:
        """Ids for an already-rendered full text (OpenRLHF's ``query``, vLLM's ``input``): no chat template is
        applied; the model's start (and, for encoders, end) tokens are added when missing. When ``prompt`` is a
        prefix of ``text`` the prompt is cut from the left; otherwise an over-long text keeps its **end**."""
        return self.encoder.encode_text(text, prompt)

    @torch.no_grad()
    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Score token-id sequences in length-sorted batches; results in input order, on CPU, float32."""
        out = torch.empty((len(seqs), self.num_outputs), dtype=torch.float32)
        if not seqs:
            return out.squeeze(-1) if self.num_outputs == 1 else out
        seqs = nonempty(seqs, self.pad_id)  # an empty sequence is scored as one pad token, in both paths
        if self.packing:
            budget = self.token_budget or self.batch_size * ROW_TOKENS // 4
            skip = getattr(self.model, "skip_token_id", None)
            for idx, packed in packed_batches(seqs, self.pad_id, ROW_TOKENS, budget, skip):
                out[idx] = self.model(packed=packed.to(self.device)).float().cpu()
            return out.squeeze(-1) if self.num_outputs == 1 else out
        for batch in length_sorted_batches([len(s) for s in seqs], self.batch_size, self.token_budget):
            ids, mask = pad_batch([seqs[i] for i in batch], self.pad_id)
            out[batch] = self.model(ids.to(self.device), mask.to(self.device)).float().cpu()
        return out.squeeze(-1) if self.num_outputs == 1 else out
