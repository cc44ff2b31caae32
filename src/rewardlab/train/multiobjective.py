"""Fit an ArmoRM (`rewardlab train --objective armo`): ridge attribute heads + verbosity decorrelation + BT-trained
gating network, all on features of a frozen backbone (formulas in :mod:`rewardlab.models.armo`).

Steps: (1) features of every rated (prompt, response) and every pair response, computed once; (2) per attribute,
closed-form ridge on the rated rows that carry that attribute; (3) decorrelation coefficients on the predicted
scores of all those responses (the reference set); (4) the gate and β trained with Adam on the BT loss over the
pairs, from cached features (the backbone is never run again) — the one loop, on :mod:`rewardlab.train.engine`
(:class:`GateObjective`; steps 1-3 are closed-form functions); (5) saved as a rewardlab checkpoint whose k-output
linear head *is* the regression (so a plain ``ModelReward`` of the directory gives the raw attribute scores) plus
``armo.safetensors`` (gate, β, decorrelation coefficients). Every option comes from an
:class:`~rewardlab.train.config.ArmoConfig`, as ``rewardlab train --objective armo`` builds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import PreferencePair, RatedRow, pairs_to_items
from rewardlab.errors import UserError
from rewardlab.models.armo import (
    ArmoRM,
    FeatureExtractor,
    GatingNetwork,
    armo_score,
    decorrelate,
    decorrelation_coefs,
    ridge_fit,
)
from rewardlab.train.batches import EpochPlan
from rewardlab.train.config import ArmoConfig
from rewardlab.train.engine import Engine, Loop, Objective
from rewardlab.train.losses import bt_loss, pairwise_correct


def _texts(x: Any) -> list[str]:
    return [x] if isinstance(x, str) else [m["content"] for m in x]


def load_frozen_backbone(base: str, texts: list[str], seed: int = 0, max_length: int = 512):
    """(backbone, tokenizer, pooling): 'tiny' (random tiny GPT-2, tokenizer trained on ``texts``), a rewardlab
    checkpoint (its trained backbone), or an HF model directory / .gguf file."""
    from rewardlab.models.backbone import default_pooling, load_backbone
    from rewardlab.models.formats import CHECKPOINT, load_reward_model

    if base == "tiny":
        from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer

        tokenizer = train_tiny_tokenizer(texts, vocab_size=512)
        model = tiny_reward_model(tokenizer, seed=seed, n_positions=max(256, max_length))
        return model.backbone, tokenizer, "last"
    if CHECKPOINT.detect(Path(base)):
        model, tokenizer, _ = load_reward_model(base)
        return model.backbone, tokenizer, model.pooling
    backbone, tokenizer = load_backbone(base)
    return backbone, tokenizer, default_pooling(backbone.config)


def fit_attribute_heads(h: torch.Tensor, rated: list[RatedRow], names: list[str],
                        ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge per attribute on the rows that have it: ``(W [k, d], b [k])``."""
    W, b = torch.zeros(len(names), h.shape[1], dtype=torch.float64), torch.zeros(len(names), dtype=torch.float64)
    for j, name in enumerate(names):
        rows = [i for i, r in enumerate(rated) if name in r.attributes]
        y = torch.tensor([[float(rated[i].attributes[name])] for i in rows])
        w_j, b_j = ridge_fit(h[rows], y, ridge)
        W[j], b[j] = w_j[0], b_j[0]
    return W, b


class GateObjective(Objective):
    """The gate's objective: ``−log σ(β g(x)ᵀr'_w − β g(x)ᵀr'_l)`` on cached tensors, batches from one
    ``torch.Generator`` seeded once and permuting the pairs every epoch (replayed from the seed out of turn)."""

    name = "armo"

    def __init__(self, f_prompt: torch.Tensor, r_chosen: torch.Tensor, r_rejected: torch.Tensor, batch_size: int,
                 seed: int):
        self.f, self.r_c, self.r_r, self.batch_size, self.seed = f_prompt, r_chosen, r_rejected, batch_size, seed
        self._drawn, self._gen, self._perm = 0, torch.Generator().manual_seed(seed), torch.arange(0)

    def plan(self, epoch: int, world: int) -> EpochPlan:
        if epoch < self._drawn - 1:  # asked out of turn: replay the stream from its seed
            self._drawn, self._gen = 0, torch.Generator().manual_seed(self.seed)
        while self._drawn <= epoch:
            self._perm, self._drawn = torch.randperm(len(self.f), generator=self._gen), self._drawn + 1
        return EpochPlan.from_batches([b.tolist() for b in self._perm.split(self.batch_size)], world)

    def loss(self, gate: torch.nn.Module, idx: list[int], device) -> tuple[torch.Tensor, None]:
        g = gate(self.f[idx])
        return bt_loss(armo_score(self.r_c[idx], g, gate.beta), armo_score(self.r_r[idx], g, gate.beta)).mean(), None


def train_gate(f_prompt: torch.Tensor, r_chosen: torch.Tensor, r_rejected: torch.Tensor, hidden: int = 64,
               layers: int = 2, epochs: int = 50, lr: float = 1e-2, batch_size: int = 256,
               seed: int = 0) -> GatingNetwork:
    """Train ``g`` and β on the BT loss ``−log σ(β gᵀr'_w − β gᵀr'_l)`` from cached tensors (``[P, d]``, ``[P, k]``):
    Adam (AdamW without decay), a constant learning rate, on the CPU where the tensors are."""
    torch.manual_seed(seed)
    gate = GatingNetwork(f_prompt.shape[1], r_chosen.shape[1], hidden, layers)
    gate.in_mean.copy_(f_prompt.mean(0))
    gate.in_std.copy_(f_prompt.std(0, unbiased=False).clamp_min(1e-6))
    loop = Loop(lr=lr, epochs=epochs, schedule="constant", seed=seed, cpu=f_prompt.device.type == "cpu",
                place_model=False)
    Engine(loop, "armo", progress=False).fit(GateObjective(f_prompt, r_chosen, r_rejected, batch_size, seed), gate)
    return gate.eval()


def train_armo(rated: list[RatedRow], pairs: list[PreferencePair], cfg: ArmoConfig,
               eval_pairs: list[PreferencePair] | None = None) -> dict[str, Any]:
    """Fit and save an ArmoRM to ``cfg.output`` with the options of ``cfg``; returns a summary (attributes, λ's, β,
    accuracies)."""
    from rewardlab.io import write_json_atomic
    from rewardlab.models.formats import ARMO
    from rewardlab.models.formats.armo import save_gate
    from rewardlab.models.formats.bt import save_reward_model
    from rewardlab.models.reward_model import RewardModel

    names = sorted({a for r in rated for a in r.attributes})
    if not names:
        raise UserError("rated rows carry no attributes")
    verbosity, base, max_length = cfg.verbosity, cfg.base, cfg.max_length
    if verbosity is not None and verbosity not in names:
        raise UserError(f"--verbosity {verbosity!r} is not one of the attributes {names}")
    if cfg.output is None:
        raise UserError("--output is required (or set 'output' in --config)")
    texts = [t for r in rated for x in (r.prompt, r.response) for t in _texts(x)]
    texts += [t for p in pairs for x in (p.prompt, p.chosen, p.rejected) for t in _texts(x)]
    backbone, tokenizer, pooling = load_frozen_backbone(base, texts, cfg.seed, max_length)
    backbone.requires_grad_(False)
    fx = FeatureExtractor(backbone, tokenizer, pooling, max_length)

    h_rated = fx.items([r.prompt for r in rated], [r.response for r in rated]).double()
    W, b = fit_attribute_heads(h_rated, rated, names, cfg.ridge)
    pp, pr = pairs_to_items(pairs)
    h_pairs = fx.items(pp, pr).double()
    scores = torch.cat([h_rated, h_pairs]) @ W.T + b
    v = names.index(verbosity) if verbosity is not None else None
    lam = decorrelation_coefs(scores, v).float() if v is not None else None

    r_pairs = decorrelate((h_pairs @ W.T + b).float(), lam, v)
    f_prompt = fx.prompts([p.prompt for p in pairs]).float()
    gate = train_gate(f_prompt, r_pairs[0::2], r_pairs[1::2], cfg.gate_hidden, cfg.gate_layers, cfg.epochs, cfg.lr,
                      seed=cfg.seed)

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"gate.{k}": t.detach().contiguous() for k, t in gate.state_dict().items()}
    if lam is not None:
        state["decorrelation"] = lam
    save_gate(out, state)
    model = RewardModel(backbone, num_outputs=len(names), pooling=pooling)
    with torch.no_grad():
        model.head.weight.copy_(W.float())
        model.head.bias.copy_(b.float())
    info = {"attributes": names, "verbosity": verbosity, "ridge": cfg.ridge, "gate_hidden": cfg.gate_hidden,
            "gate_layers": cfg.gate_layers, "base": base}
    save_reward_model(model, tokenizer, out, manifest={"max_length": max_length, "attributes": names, "armo": info})

    reward = ARMO.load(out).model
    metrics = {"train_accuracy": _accuracy(reward, pairs)}
    if eval_pairs:
        metrics["eval_accuracy"] = _accuracy(reward, eval_pairs)
    rated_pred = h_rated.float() @ W.float().T + b.float()
    metrics["rated_r2"] = {n: _r2(rated_pred[:, j], rated, n) for j, n in enumerate(names)}
    summary = {"attributes": names, "verbosity": verbosity, "decorrelation": None if lam is None else lam.tolist(),
               "beta": gate.beta.item(), "n_rated": len(rated), "n_pairs": len(pairs), "metrics": metrics}
    write_json_atomic(out / "run.json", summary)
    return summary


def _accuracy(reward: ArmoRM, pairs: list[PreferencePair]) -> float:
    s = reward.score(*pairs_to_items(pairs))
    return pairwise_correct(s[0::2], s[1::2]).mean().item()


def _r2(pred: torch.Tensor, rated: list[RatedRow], name: str) -> float:
    rows = [i for i, r in enumerate(rated) if name in r.attributes]
    y = torch.tensor([float(rated[i].attributes[name]) for i in rows])
    ss = ((y - y.mean()) ** 2).sum().clamp_min(1e-12)
    return float(1 - ((y - pred[rows]) ** 2).sum() / ss)
