"""Personalized rewards: a mixture of K Bradley–Terry heads with a context router (MiCRo-style), and the
MaxMin-RLHF worst-group objective.

When annotators disagree, one BT reward fits their average and can serve nobody. MiCRo (Shen et al. 2025, "MiCRo:
Mixture Modeling and Context-aware Routing for Personalized Preference Learning") models the preference probability
as a mixture over K latent preference types, with mixture weights from a router over the context c (the prompt,
which may carry who is asking, e.g. a system message):

    P(y_c ≻ y_r | x) = Σ_k w_k(c) · σ(r_k(x, y_c) − r_k(x, y_r)),     w(c) = softmax(router(c))

trained by the negative log-likelihood :func:`mixture_bt_loss` on pairs *without* annotator labels; with K = 1 it is
the BT loss. The personalized reward is ``r(x, y) = Σ_k w_k(c) r_k(x, y)``. A small "balance" term
(:func:`balance_penalty`, KL of the mean routing from uniform) keeps heads from collapsing into one.

MaxMin-RLHF (Chakraborty et al. 2024) optimizes the worst group: ``max_π min_k E_{x, y~π}[r_k(x, y)]``. Its
subgradient uses the currently worst group's reward (:func:`maxmin_weights`); :class:`MixtureReward` with
``aggregate="min"`` gives the per-item pessimistic surrogate ``min_k r_k`` (batch-independent).

Model: :class:`MixtureRewardModel` = a :class:`~rewardlab.models.reward_model.RewardModel` with K outputs (the heads)
+ a linear router on the same backbone's pooled features of the context (prompt only). Checkpoints are ordinary
rewardlab checkpoints (so ``rewardlab eval DIR`` also loads them, as the mean of the heads) plus ``router.safetensors``
and a ``personalized`` entry in the manifest; spec ``micro:DIR[:router|min|mean|head=K]``.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import PreferencePair, Prompt, Response
from rewardlab.data.tokenize import PairEncoder
from rewardlab.models.formats.micro import ROUTER_FILE  # noqa: F401  (re-exported: the file name is the format's)
from rewardlab.models.mixture import MixtureRewardModel
from rewardlab.models.reward_model import RewardModel

AGGREGATES = ("router", "min", "mean")

# ----------------------------------------------------------------------------------------------- pure functions


def mixture_bt_loss(delta: torch.Tensor, router_logits: torch.Tensor) -> torch.Tensor:
    """MiCRo mixture likelihood, per pair: ``−log Σ_k softmax(router)_k · σ(Δ_k)``.

    delta: ``[b, K]`` head margins ``r_k(chosen) − r_k(rejected)``; router_logits: ``[b, K]`` (or ``[K]``, shared).
    Returns ``[b]``. Computed as ``−logsumexp(log_softmax(router) + logσ(Δ))`` (stable). K = 1: the BT loss."""
    log_w = torch.log_softmax(router_logits, -1).expand_as(delta)
    return -torch.logsumexp(log_w + nn.functional.logsigmoid(delta), dim=-1)


def balance_penalty(router_logits: torch.Tensor) -> torch.Tensor:
    """``KL(w̄ ‖ uniform) = Σ_k w̄_k log(K w̄_k)`` with ``w̄`` the batch-mean routing ``[K]``; 0 when heads are used
    equally. router_logits: ``[b, K]``. Scalar."""
    w = torch.softmax(router_logits, -1).mean(0)
    return (w * torch.log(w.clamp_min(1e-12) * w.shape[-1])).sum()


def mixture_probability(delta: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``P(chosen ≻ rejected) = Σ_k w_k σ(Δ_k)``; delta ``[b, K]``, weights ``[b, K]`` or ``[K]`` → ``[b]``."""
    return (weights.expand_as(delta) * torch.sigmoid(delta)).sum(-1)


def maxmin_weights(group_values: torch.Tensor, temperature: float = 0.0) -> torch.Tensor:
    """Weights over groups for the MaxMin objective ``min_k J_k``: one-hot on the worst group (the subgradient of
    the min) when ``temperature`` is 0, else the smooth ``softmax(−J/τ)``. group_values ``[K]`` → ``[K]``."""
    if temperature > 0:
        return torch.softmax(-group_values / temperature, -1)
    return nn.functional.one_hot(group_values.argmin(), group_values.shape[-1]).to(group_values.dtype)


def fit_group_weights(delta: torch.Tensor, steps: int = 200, lr: float = 0.5) -> torch.Tensor:
    """Mixture weights for one user/group from a few of its labelled pairs (MiCRo's routing from limited context
    data): ``argmax_w Σ_i log Σ_k w_k σ(Δ_ik)`` over the simplex, by Adam on the logits. delta ``[n, K]`` → ``[K]``."""
    logits = torch.zeros(delta.shape[-1], dtype=delta.dtype, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        mixture_bt_loss(delta.detach(), logits).mean().backward()
        opt.step()
    return torch.softmax(logits.detach(), -1)


# ----------------------------------------------------------------------------------------------- model


class _Encoder:
    """(prompt, response) ids for the heads and prompt-only ids for the router."""

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


@dataclass
class MixtureConfig:
    k: int = 2
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    max_length: int = 256
    balance: float = 0.1   # weight of balance_penalty
    seed: int = 0


def train_mixture(model: MixtureRewardModel, tokenizer, pairs: Sequence[PreferencePair],
                  config: MixtureConfig | None = None, progress: bool = True,
                  dtype: str | torch.dtype | None = None) -> list[float]:
    """Fit heads, router and backbone on pairs by AdamW on ``mean(mixture_bt_loss) + balance·balance_penalty``.
    Returns the mean loss per epoch. Annotator identities are not used (they are latent). The model trains where it
    is; ``dtype`` (:func:`rewardlab.models.device.resolve_dtype`, None = auto) is the autocast precision of the
    forward passes: the weights and AdamW stay fp32, and fp16 losses are scaled."""
    from rewardlab.models.device import resolve_dtype

    cfg = config or MixtureConfig(k=model.k)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    enc = _Encoder(tokenizer, cfg.max_length)
    chosen = enc.items([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = enc.items([p.prompt for p in pairs], [p.rejected for p in pairs])
    ctx = enc.contexts([p.prompt for p in pairs])
    device = next(model.parameters()).device
    dtype = resolve_dtype(dtype, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    model.train()
    history = []
    from rewardlab.rewards.judge import progress_bar

    n_batches = math.ceil(len(pairs) / cfg.batch_size)
    with progress_bar(progress, "training mixture RM", cfg.epochs * n_batches) as advance:
        for _ in range(cfg.epochs):
            order = list(range(len(pairs)))
            rng.shuffle(order)
            total = 0.0
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                ids, mask = pad_batch([chosen[i] for i in idx] + [rejected[i] for i in idx], enc.pad_id)
                cids, cmask = pad_batch([ctx[i] for i in idx], enc.pad_id)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    r = model.heads(ids.to(device), mask.to(device)).float()
                    logits = model.route(cids.to(device), cmask.to(device)).float()
                delta = r[: len(idx)] - r[len(idx) :]
                loss = mixture_bt_loss(delta, logits).mean() + cfg.balance * balance_penalty(logits)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                total += loss.item() * len(idx)
                advance(1)
            history.append(total / max(1, len(pairs)))
    model.eval()
    return history


def fit_mixture(pairs: Sequence[PreferencePair], base: str, cfg: MixtureConfig, device: str | None = None,
                dtype: str | None = None) -> tuple[MixtureRewardModel, Any, list[float]]:
    """A mixture RM on ``base`` ('tiny': a tiny model whose tokenizer is trained on the pairs' text, else a local HF
    model directory / .gguf file) trained on ``pairs`` on ``device`` in ``dtype`` (:mod:`rewardlab.models.device`;
    None = auto; see :func:`train_mixture`); returns (model, tokenizer, loss per epoch)."""
    from rewardlab.models.device import resolve_device

    if base == "tiny":
        from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer
        from rewardlab.rewards.judge import as_text

        texts = [as_text(x) for p in pairs for x in (p.prompt, p.chosen, p.rejected)]
        tokenizer = train_tiny_tokenizer(texts)
        rm = tiny_reward_model(tokenizer, num_outputs=cfg.k, seed=cfg.seed)
    else:
        from rewardlab.models.backbone import default_pooling, load_backbone

        backbone, tokenizer = load_backbone(base)
        rm = RewardModel(backbone, num_outputs=cfg.k, pooling=default_pooling(backbone.config))
    model = MixtureRewardModel(rm).to(resolve_device(device))
    return model, tokenizer, train_mixture(model, tokenizer, pairs, cfg, dtype=dtype)


def save_mixture(model: MixtureRewardModel, tokenizer, out_dir: str | os.PathLike, config: MixtureConfig | None = None,
                 manifest: dict[str, Any] | None = None) -> Path:
    """A rewardlab checkpoint (heads = K outputs) + ``router.safetensors``, written atomically
    (:func:`rewardlab.models.formats.micro.save_mixture`); ``config`` is recorded under ``personalized.train``."""
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
        self.encoder = _Encoder(tokenizer, max_length)

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
