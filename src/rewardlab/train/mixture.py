"""MiCRo training (Shen et al. 2025, "MiCRo: Mixture Modeling and Context-aware Routing for Personalized Preference
Learning"): a mixture of K Bradley–Terry heads with a context router, fitted on pairs *without* annotator labels.

When annotators disagree, one BT reward fits their average and can serve nobody. MiCRo models the preference
probability as a mixture over K latent preference types, weighted by a router over the context c (the prompt, which
may carry who is asking)::

    P(y_c ≻ y_r | x) = Σ_k w_k(c) · σ(r_k(x, y_c) − r_k(x, y_r)),     w(c) = softmax(router(c))

Each step minimizes, over a batch B of pairs (:func:`~rewardlab.train.losses.mixture_bt_loss`,
:func:`~rewardlab.train.losses.balance_penalty`)::

    L = (1/|B|) Σ_{i ∈ B} −log Σ_k w_k(c_i) σ(Δ_ik)  +  λ · KL(w̄ ‖ uniform)        λ = ``balance``

on the loop of :mod:`rewardlab.train.engine` (:class:`MixtureObjective`): batches cut from one ``random.Random(seed)``
reshuffle of the pairs per epoch, AdamW (weight decay 0.01, PyTorch's default) on heads, router and backbone at a
constant learning rate, no clipping; forwards autocast to ``dtype``, weights and optimizer state fp32. The model is
:class:`~rewardlab.models.mixture.MixtureRewardModel`; the Reward that scores with it,
:class:`rewardlab.rewards.personalized.MixtureReward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import PreferencePair
from rewardlab.errors import UserError
from rewardlab.models.mixture import MixtureEncoder, MixtureRewardModel
from rewardlab.train.batches import EpochPlan, cut, shuffled_orders
from rewardlab.train.engine import Engine, Loop, Objective
from rewardlab.train.losses import balance_penalty, mixture_bt_loss


@dataclass
class MixtureConfig:
    k: int = 2
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    max_length: int = 256
    balance: float = 0.1  # λ, the weight of balance_penalty
    seed: int = 0


class MixtureObjective(Objective):
    """MiCRo's objective: the mixture likelihood of the K heads' margins under the router's weights, plus the
    balance term (see the module docstring)."""

    name, unit = "micro", "pairs"

    def __init__(self, model_encoder: MixtureEncoder, pairs: Sequence[PreferencePair], cfg: MixtureConfig):
        enc, prompts = model_encoder, [p.prompt for p in pairs]
        self.chosen = enc.items(prompts, [p.chosen for p in pairs])
        self.rejected = enc.items(prompts, [p.rejected for p in pairs])
        self.contexts = enc.contexts(prompts)
        self.pad_id, self.cfg = enc.pad_id, cfg

    def plan(self, epoch: int, world: int) -> EpochPlan:
        order = shuffled_orders(len(self.chosen), self.cfg.seed, epoch)
        return EpochPlan.from_batches(cut(order, self.cfg.batch_size), world)

    def loss(self, model: torch.nn.Module, idx: list[int], device) -> tuple[torch.Tensor, None]:
        ids, mask = pad_batch([self.chosen[i] for i in idx] + [self.rejected[i] for i in idx], self.pad_id)
        cids, cmask = pad_batch([self.contexts[i] for i in idx], self.pad_id)
        r = model.heads(ids.to(device), mask.to(device)).float()  # [2b, K]: chosen, then rejected
        logits = model.route(cids.to(device), cmask.to(device)).float()  # [b, K]
        delta = r[: len(idx)] - r[len(idx) :]
        return mixture_bt_loss(delta, logits).mean() + self.cfg.balance * balance_penalty(logits), None


def train_mixture(model: MixtureRewardModel, tokenizer, pairs: Sequence[PreferencePair],
                  config: MixtureConfig | None = None, progress: bool = True,
                  dtype: str | torch.dtype | None = None) -> list[float]:
    """Fit heads, router and backbone on ``pairs`` (see the module docstring); returns the mean loss of each epoch.
    Annotator identities are not used (they are latent). The model trains where it is; ``dtype``
    (:func:`rewardlab.models.device.resolve_dtype`, None = auto) is the autocast precision of the forward passes
    (fp16, with its loss scaling, needs a GPU)."""
    from rewardlab.models.device import resolve_dtype

    cfg = config or MixtureConfig(k=model.k)
    device = next(model.parameters()).device
    dtype = resolve_dtype(dtype, device)
    if dtype == torch.float16 and device.type == "cpu":
        raise UserError("--dtype fp16 needs a GPU to train on (use bf16 or fp32 on the CPU)")
    precision = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    loop = Loop(lr=cfg.lr, epochs=cfg.epochs, weight_decay=0.01, schedule="constant", seed=cfg.seed,
                mixed_precision=precision, cpu=device.type == "cpu", place_model=False)
    engine = Engine(loop, "micro", progress=progress)
    if engine.world > 1:
        raise UserError("a mixture trains in one process (no `accelerate launch` data parallelism)")
    result = engine.fit(MixtureObjective(MixtureEncoder(tokenizer, cfg.max_length), pairs, cfg), model)
    model.eval()
    return result.epoch_losses


def fit_mixture(pairs: Sequence[PreferencePair], base: str, cfg: MixtureConfig, device: str | None = None,
                dtype: str | None = None) -> tuple[MixtureRewardModel, Any, list[float]]:
    """A mixture RM (:func:`build_mixture`) trained on ``pairs`` on ``device`` in ``dtype``
    (:mod:`rewardlab.models.device`; None = auto; see :func:`train_mixture`); returns (model, tokenizer, loss per
    epoch)."""
    model, tokenizer = build_mixture(pairs, base, cfg, device)
    return model, tokenizer, train_mixture(model, tokenizer, pairs, cfg, dtype=dtype)


def build_mixture(pairs: Sequence[PreferencePair], base: str, cfg: MixtureConfig,
                  device: str | None = None) -> tuple[MixtureRewardModel, Any]:
    """An untrained mixture RM with ``cfg.k`` heads on ``base`` ('tiny': a tiny model whose tokenizer is trained on
    the pairs' text, else a local HF model directory / .gguf file), on ``device``; returns (model, tokenizer)."""
    from rewardlab.models.device import resolve_device
    from rewardlab.models.reward_model import RewardModel

    if base == "tiny":
        from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer

        texts = [_as_text(x) for p in pairs for x in (p.prompt, p.chosen, p.rejected)]
        tokenizer = train_tiny_tokenizer(texts)
        rm = tiny_reward_model(tokenizer, num_outputs=cfg.k, seed=cfg.seed)
    else:
        from rewardlab.models.backbone import default_pooling, load_backbone

        backbone, tokenizer = load_backbone(base)
        rm = RewardModel(backbone, num_outputs=cfg.k, pooling=default_pooling(backbone.config))
    return MixtureRewardModel(rm).to(resolve_device(device)), tokenizer


def _as_text(x: Any) -> str:
    """A prompt/response as one text for the tiny tokenizer; a conversation becomes ``role: content`` lines."""
    return x if isinstance(x, str) else "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in x)


def fit_group_weights(delta: torch.Tensor, steps: int = 200, lr: float = 0.5) -> torch.Tensor:
    """Mixture weights for one user/group from a few of its labelled pairs (MiCRo's routing from limited context
    data): ``argmax_w Σ_i log Σ_k w_k σ(Δ_ik)`` over the simplex, by Adam on the logits. delta ``[n, K]`` → ``[K]``.
    (A closed little fit over K logits, not a pass over data: it does not need the engine.)"""
    logits = torch.zeros(delta.shape[-1], dtype=delta.dtype, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        mixture_bt_loss(delta.detach(), logits).mean().backward()
        opt.step()
    return torch.softmax(logits.detach(), -1)
