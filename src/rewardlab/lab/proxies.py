"""Proxy reward models of the tabular world: small models over the candidates' features, trained with the
Bradley–Terry loss (:func:`rewardlab.train.losses.bt_loss`) on labelled pairs.

A proxy is returned as its score table [P, C] over every (prompt, candidate) — in the tabular world a reward
model *is* that table, so the optimizers, the metrics and BoN all read it directly.

Every trained table is centred per prompt over its candidates (:func:`centre_per_prompt`). BT pairs share their
prompt, so the loss does not identify a per-prompt constant: with hidden == 0 the weights on the prompt features
get a gradient of pure float32 rounding noise (the chosen and rejected terms cancel up to rounding), which AdamW
divides by its own RMS into full-size steps. Those offsets then depend on the CPU's summation order, not on the
data, and so would anything not invariant to a per-prompt constant (global standardization, RV, ensemble variance
across members). Centring removes exactly the unidentified part; every within-prompt difference is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rewardlab.lab.world import Pairs, TabularWorld, sample_pairs
from rewardlab.train.losses import bt_loss


class FeatureRM(nn.Module):
    """r(x, y) = MLP([φ(x, y), ψ(x)]) with one hidden layer of ``hidden`` SiLU units, or linear when hidden == 0."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        else:
            self.net = nn.Linear(in_dim, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs).squeeze(-1)


@dataclass(frozen=True)
class ProxySpec:
    """How one proxy is made: data amount, fraction of on-policy pairs (rest off-policy), model size, seed."""

    name: str
    n_pairs: int
    on_policy_fraction: float = 1.0
    hidden: int = 16
    seed: int = 0
    bootstrap: bool = False  # train on a bootstrap resample of the pairs (ensemble members)
    meta: dict = field(default_factory=dict, compare=False)


def centre_per_prompt(scores: torch.Tensor) -> torch.Tensor:
    """scores [..., P, C] minus each prompt's mean over its C candidates (uniform weights): the part of a BT-trained
    table the data identify (see the module docstring)."""
    return scores - scores.mean(-1, keepdim=True)


def train_feature_rm(world: TabularWorld, pairs: Pairs, hidden: int, seed: int, steps: int = 300,
                     lr: float = 0.03, weight_decay: float = 1e-3, centre: bool = True) -> torch.Tensor:
    """Fit a :class:`FeatureRM` by full-batch AdamW on the mean BT loss; returns its scores [P, C] (float64),
    centred per prompt unless ``centre`` is False (the raw table, machine-dependent offsets included)."""
    torch.manual_seed(seed)
    inputs = world.inputs().float()
    model = FeatureRM(inputs.shape[-1], hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    xc = inputs[pairs.prompt, pairs.chosen]
    xr = inputs[pairs.prompt, pairs.rejected]
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        bt_loss(model(xc), model(xr)).mean().backward()
        opt.step()
    with torch.no_grad():
        scores = model(inputs).double()
    return centre_per_prompt(scores) if centre else scores


def pairs_for(world: TabularWorld, spec: ProxySpec, generator: torch.Generator, noise: float | None = None) -> Pairs:
    """The training pairs of a proxy: ``on_policy_fraction`` from π₀, the rest from the off-policy policy."""
    n_on = int(round(spec.n_pairs * spec.on_policy_fraction))
    parts = []
    if n_on:
        parts.append(sample_pairs(world, world.policies["pi0"], n_on, generator, noise=noise))
    if spec.n_pairs - n_on:
        parts.append(sample_pairs(world, world.policies["off"], spec.n_pairs - n_on, generator, noise=noise))
    return Pairs.cat(parts)


def train_proxy(world: TabularWorld, spec: ProxySpec, pairs: Pairs | None = None, steps: int = 300) -> torch.Tensor:
    """Sample the spec's data (unless ``pairs`` is given) and fit the proxy; returns scores [P, C]."""
    g = torch.Generator().manual_seed(spec.seed)
    if pairs is None:
        pairs = pairs_for(world, spec, g)
    if spec.bootstrap:
        pairs = pairs.take(torch.randint(0, len(pairs), (len(pairs),), generator=g))
    return train_feature_rm(world, pairs, spec.hidden, spec.seed, steps=steps)
