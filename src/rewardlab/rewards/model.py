"""ModelReward: a trained RewardModel as a :class:`~rewardlab.rewards.base.Reward`, with fast batched scoring
(:class:`~rewardlab.models.scorer.PooledScorer`: length-sorted batches, input order restored, scores independent of
batch size and composition).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.data.tokenize import Rendering
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.scorer import PooledScorer


def last_class_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Scalar reward of a k-class classifier's logits ``[n, k]``: the log-odds of its last class,
    ``l_k - logsumexp(l_1..l_{k-1})`` (``l_1 - l_0`` for two classes; σ of it is the softmax probability of the last
    class, what verl reads from vLLM's ``/classify`` as ``probs[-1]``). The mean of class logits, the reduction of
    k-objective heads, carries no class information (softmax is shift-invariant)."""
    logits = logits.float()
    return logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)


class ModelReward(PooledScorer):
    """Reward from a :class:`RewardModel`: ``score`` returns ``[n]`` (one head) or ``[n, k]`` (k outputs).

    Inputs are rendered with ``model.rendering`` (set by every loader, a chat-template override included), else the
    manifest's record of it, else the tokenizer's probed one. An imported k-class classifier (transformers
    ``num_labels`` k > 1, not a regression: manifest ``scalar``) has ``aggregate`` = :func:`last_class_log_odds`, the
    scalar reward where one is needed (serve, eval); k-output regression heads are reduced by the mean there."""

    def __init__(self, model: RewardModel, tokenizer, max_length: int = 512, batch_size: int = 32,
                 device: str | torch.device | None = None, manifest: dict[str, Any] | None = None,
                 token_budget: int | None = None, name: str = "model"):
        self.manifest = manifest or {}
        recorded = self.manifest.get("rendering")
        rendering = getattr(model, "rendering", None) or (Rendering.from_dict(recorded) if recorded else None)
        super().__init__(model, tokenizer, int(self.manifest.get("max_length", max_length)), batch_size, device,
                         rendering, token_budget)
        self.name = name
        if self.manifest.get("scalar") == "last_class_log_odds":
            self.aggregate = last_class_log_odds

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None, dtype: str | None = None,
                        chat_template: str | None = None, attn_implementation: str | None = None,
                        **kwargs) -> ModelReward:
        """A rewardlab checkpoint or a transformers / OpenRLHF / PEFT reward-model directory
        (:func:`rewardlab.models.formats.load_reward_model`). ``chat_template`` (template text) overrides the
        rendering's template."""
        from rewardlab.models.device import resolve_device, resolve_dtype
        from rewardlab.models.formats import load_reward_model

        device = resolve_device(device)
        loaded = load_reward_model(path, device=device, dtype=resolve_dtype(dtype, device),
                                   attn_implementation=attn_implementation, chat_template=chat_template)
        kwargs.setdefault("name", os.path.basename(os.path.normpath(str(path))))
        return cls(loaded.model, loaded.tokenizer, manifest=loaded.manifest, **kwargs)

    @property
    def normalization(self) -> dict[str, float] | None:
        """Reference ``{"mean", "std", "n", "source"}`` of the manifest (``rewardlab calibrate``), or None."""
        return self.manifest.get("normalization")

    @property
    def attribute_names(self) -> list[str] | None:
        """The manifest's ``attributes`` when they name this k-output model's outputs (an ArmoRM directory read as a
        plain checkpoint: its regression heads), else None (rewards.base)."""
        names = self.manifest.get("attributes")
        ok = isinstance(names, list) and self.num_outputs > 1 and len(names) == self.num_outputs
        return [str(n) for n in names] if ok else None

    def attributes(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """The k outputs ``[n, k]``, column j named ``attribute_names[j]``."""
        return self.score(prompts, responses)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        return self.score_ids(self.encode(prompts, responses))
