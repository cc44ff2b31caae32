"""Personalized rewards: a MiCRo-style mixture of K Bradley–Terry heads with a context router, as a Reward.

The mixture (Shen et al. 2025, "MiCRo"; trained by :mod:`rewardlab.train.mixture`, losses in
:mod:`rewardlab.train.losses`) gives K rewards ``r_k(x, y)`` and routing weights ``w(c) = softmax(router(c))`` over
the context c (the prompt, which may carry who is asking). :class:`MixtureReward` scores with the personalized reward
``r(x, y) = Σ_k w_k(c) r_k(x, y)``, or with ``min_k r_k`` — the per-item, batch-independent surrogate of MaxMin-RLHF's
worst group (Chakraborty et al. 2024; :func:`rewardlab.train.losses.maxmin_weights`) —, their mean, or one head.

Model: :class:`~rewardlab.models.mixture.MixtureRewardModel` = a :class:`~rewardlab.models.reward_model.RewardModel`
with K outputs (the heads) + a linear router on the same backbone's pooled features of the context (prompt only).
Checkpoints are ordinary rewardlab checkpoints (so ``rewardlab eval DIR`` also loads them, as the mean of the heads)
plus ``router.safetensors`` and a ``personalized`` entry in the manifest; spec ``micro:DIR[:router|min|mean|head=K]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import Prompt, Response
from rewardlab.models.mixture import MixtureEncoder, MixtureRewardModel

AGGREGATES = ("router", "min", "mean")


def save_mixture(model: MixtureRewardModel, tokenizer, out_dir: str | os.PathLike, config: Any = None,
                 manifest: dict[str, Any] | None = None) -> Path:
    """A rewardlab checkpoint (heads = K outputs) + ``router.safetensors``, written atomically
    (:func:`rewardlab.models.formats.micro.save_mixture`); ``config`` (a :class:`rewardlab.train.mixture.MixtureConfig`)
    is recorded under ``personalized.train``."""
    from rewardlab.models.formats.micro import save_mixture as save

    if config is None:
        return save(model, tokenizer, out_dir, manifest)
    return save(model, tokenizer, out_dir, manifest, {"train": asdict(config)}, max_length=config.max_length)


def load_mixture(path: str | os.PathLike, device: str = "cpu") -> tuple[MixtureRewardModel, Any, dict]:
    """``(model, tokenizer, manifest)`` of a mixture checkpoint (:data:`rewardlab.models.formats.MICRO`)."""
    from rewardlab.models.formats import MICRO

    return tuple(MICRO.load(path, device=device))


# ----------------------------------------------------------------------------------------------- the reward


class MixtureReward:
    """A mixture RM as a Reward. ``aggregate``: ``"router"`` (``Σ_k w_k(x) r_k``, the personalized reward),
    ``"min"`` (``min_k r_k``, the item-wise MaxMin surrogate), ``"mean"``, or an int (one head). ``score_heads``
    gives ``[n, K]`` and ``route`` the weights ``[n, K]``."""

    num_outputs = 1

    def __init__(self, model: MixtureRewardModel, tokenizer, aggregate: str | int = "router", max_length: int = 256,
                 batch_size: int = 32, name: str = "micro"):
        if not (aggregate in AGGREGATES or (isinstance(aggregate, int) and 0 <= aggregate < model.k)):
            raise ValueError(f"aggregate must be one of {AGGREGATES} or a head index < {model.k}, got {aggregate!r}")
        self.model, self.tokenizer, self.aggregate = model.eval(), tokenizer, aggregate
        self.batch_size, self.name = batch_size, name
        self.encoder = MixtureEncoder(tokenizer, max_length)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, aggregate: str | int = "router", device: str | None = None,
                        **kwargs) -> MixtureReward:
        model, tokenizer, manifest = load_mixture(path, device=device or "cpu")
        kwargs.setdefault("name", f"micro:{os.path.basename(os.path.normpath(str(path)))}")
        return cls(model, tokenizer, aggregate, max_length=int(manifest.get("max_length", 256)), **kwargs)

    @torch.no_grad()
    def _batched(self, fn, seqs: list[list[int]]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out = torch.empty((len(seqs), self.model.k))
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        for s in range(0, len(order), self.batch_size):
            b = order[s : s + self.batch_size]
            ids, mask = pad_batch([seqs[i] for i in b], self.encoder.pad_id)
            out[b] = fn(ids.to(device), mask.to(device)).float().cpu()
        return out

    def score_heads(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        return self._batched(self.model.heads, self.encoder.items(prompts, responses))

    def route(self, prompts: Sequence[Prompt]) -> torch.Tensor:
        return torch.softmax(self._batched(self.model.route, self.encoder.contexts(prompts)), -1)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return torch.zeros(0)
        r = self.score_heads(prompts, responses)
        if self.aggregate == "router":
            return (self.route(prompts) * r).sum(-1)
        if self.aggregate == "min":
            return r.min(-1).values
        if self.aggregate == "mean":
            return r.mean(-1)
        return r[:, int(self.aggregate)]


def mixture_reward_from_spec(spec: str, device: str | None = None) -> MixtureReward:
    """``micro:DIR[:router|min|mean|head=K]`` → :class:`MixtureReward` (default: the router's mixture)."""
    from rewardlab.errors import UserError

    body = spec.split(":", 1)[1] if spec.startswith("micro:") else spec
    path, _, agg = body.rpartition(":") if body.rsplit(":", 1)[-1] in AGGREGATES or ":head=" in body else (body, "",
                                                                                                           "router")
    aggregate: str | int = agg
    if agg.startswith("head="):
        try:
            aggregate = int(agg[5:])
        except ValueError:
            raise UserError(f"reward spec {spec!r}: head=K needs an integer") from None
    if not Path(path).is_dir():
        raise UserError(f"reward spec {spec!r}: {path} is not a directory; expected micro:DIR[:router|min|mean|head=K]")
    try:
        return MixtureReward.from_pretrained(path, aggregate=aggregate, device=device)
    except ValueError as e:
        raise UserError(f"reward spec {spec!r}: {e}") from None
