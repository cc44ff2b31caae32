"""ModelReward: a trained RewardModel as a :class:`~rewardlab.rewards.base.Reward`, with fast batched scoring.

Scoring sorts items by token length and batches neighbours together (little padding), then restores input order.
Scores are independent of batch size and composition (the pooling reads the last non-pad token from the mask).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from rewardlab.data.batching import length_sorted_batches, pad_batch
from rewardlab.data.records import Prompt, Response
from rewardlab.data.tokenize import PairEncoder, Rendering
from rewardlab.models.reward_model import RewardModel


def last_class_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Scalar reward of a k-class classifier's logits ``[n, k]``: the log-odds of its last class,
    ``l_k - logsumexp(l_1..l_{k-1})`` (``l_1 - l_0`` for two classes; σ of it is the softmax probability of the last
    class, what verl reads from vLLM's ``/classify`` as ``probs[-1]``). The mean of class logits, the reduction of
    k-objective heads, carries no class information (softmax is shift-invariant)."""
    logits = logits.float()
    return logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)


class ModelReward:
    """Reward from a :class:`RewardModel`: ``score`` returns ``[n]`` (one head) or ``[n, k]`` (k outputs).

    An imported k-class classifier (transformers ``num_labels`` k > 1, not a regression: manifest ``scalar``) has
    ``aggregate`` = :func:`last_class_log_odds`, the scalar reward where one is needed (serve, eval); k-output
    regression heads are reduced by the mean there."""

    def __init__(self, model: RewardModel, tokenizer, max_length: int = 512, batch_size: int = 32,
                 device: str | torch.device | None = None, manifest: dict[str, Any] | None = None,
                 token_budget: int | None = None, name: str = "model"):
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.manifest = manifest or {}
        self.max_length = int(self.manifest.get("max_length", max_length))
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.name = name
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        rendering = self.manifest.get("rendering")
        rendering = (Rendering.from_dict(rendering) if rendering else getattr(model, "rendering", None)
                     or Rendering.for_tokenizer(tokenizer, decoder=not getattr(model, "encoder", False)))
        self.encoder = PairEncoder(tokenizer, max_length=self.max_length, overlong="truncate", rendering=rendering)
        if self.manifest.get("scalar") == "last_class_log_odds":
            self.aggregate = last_class_log_odds

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None, dtype: str | None = None,
                        chat_template: str | None = None, attn_implementation: str | None = None,
                        **kwargs) -> ModelReward:
        """A rewardlab checkpoint or a transformers / OpenRLHF reward-model directory. ``chat_template`` (template
        text) overrides the rendering's template."""
        from rewardlab.models.checkpoint import load_reward_model
        from rewardlab.models.device import resolve_device, resolve_dtype

        device = resolve_device(device)
        model, tokenizer, manifest = load_reward_model(path, device=device, dtype=resolve_dtype(dtype, device),
                                                       attn_implementation=attn_implementation)
        if chat_template is not None:
            manifest = {**manifest, "rendering": {**manifest["rendering"], "chat_template": chat_template}}
        kwargs.setdefault("name", os.path.basename(os.path.normpath(str(path))))
        return cls(model, tokenizer, manifest=manifest, **kwargs)

    @property
    def num_outputs(self) -> int:
        return self.model.num_outputs

    @property
    def normalization(self) -> dict[str, float] | None:
        """Reference ``{"mean", "std", "n", "source"}`` of the manifest (``rewardlab calibrate``), or None."""
        return self.manifest.get("normalization")

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
        for batch in length_sorted_batches([len(s) for s in seqs], self.batch_size, self.token_budget):
            ids, mask = pad_batch([seqs[i] for i in batch], self.pad_id)
            out[batch] = self.model(ids.to(self.device), mask.to(self.device)).float().cpu()
        return out.squeeze(-1) if self.num_outputs == 1 else out

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        return self.score_ids(self.encode(prompts, responses))
