"""The tabular gold-reward world: prompts with fixed candidate sets, a known gold reward r*, softmax
policies over the candidates, preference labels drawn from r*, and the constructed "teacher" rewards.

Every prompt x has C candidate responses, each a feature vector φ(x, y) ∈ R^D (feature 0 is a heavy-tailed
"length"), and a prompt feature vector ψ(x) ∈ R^Dp. The gold ("human") reward is

    r*(x, y) = b(x) + s(x) · [ w·φ₁: + c·Σ_j tanh(A φ₁:)_j + g(ℓ) ],    g(ℓ) = a·(ℓ − ℓ²/(2ℓ*))

with a prompt offset b(x) = σ_b·(u·ψ(x)), a per-prompt scale s(x) = exp(σ_s·(v·ψ(x))) and a length term that
rises up to ℓ* and falls beyond it ("longer is better — until it is not"), the classic proxy trap: a proxy fitted on
typical-length responses learns "longer is better" and over-optimizes toward the rare, very long candidates.

A policy is a [P, C] tensor of logits, π(y|x) = softmax(θ_x)_y. All tensors are float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WorldConfig:
    n_prompts: int = 64
    n_candidates: int = 32
    n_features: int = 6            # response features; feature 0 is "length"
    n_prompt_features: int = 4
    prompt_offset_std: float = 1.0  # σ_b: between-prompt spread of r* (invisible to BT, but not to RV)
    prompt_scale_std: float = 0.4   # σ_s: log-std of the per-prompt scale s(x)
    length_weight: float = 2.0      # a
    length_optimum: float = 2.5     # ℓ*
    length_sigma: float = 1.0       # ℓ ~ LogNormal(0, length_sigma)
    interaction_weight: float = 0.5  # weight of the nonlinear term Σ_j tanh(A φ)_j
    policy_logit_std: float = 1.0   # diversity of π₀ (std of its logits)
    length_aversion: float = 2.0    # π₀ rarely writes long answers: logit −κ·relu(z_len − ½)
    label_temperature: float = 1.0  # τ in P(a ≻ b) = σ((r*(a) − r*(b)) / τ)
    label_noise: float = 0.0        # probability that a label is flipped (Coste et al. use 0.25)


@dataclass
class TabularWorld:
    config: WorldConfig
    features: torch.Tensor        # [P, C, D] response features
    prompt_features: torch.Tensor  # [P, Dp]
    gold: torch.Tensor            # [P, C] r*(x, y)
    policies: dict[str, torch.Tensor]  # name -> logits [P, C]: "pi0" (initial), "off" (off-policy data), "B"
    gold_params: GoldParams | None = None

    @property
    def n_prompts(self) -> int:
        return self.gold.shape[0]

    @property
    def n_candidates(self) -> int:
        return self.gold.shape[1]

    def inputs(self) -> torch.Tensor:
        """Proxy-RM inputs [P, C, D + Dp]: response features concatenated with the prompt's features."""
        P, C, _ = self.features.shape
        return torch.cat([self.features, self.prompt_features[:, None, :].expand(P, C, -1)], dim=-1)


def length_term(length: torch.Tensor, weight: float, optimum: float) -> torch.Tensor:
    """g(ℓ) = a·(ℓ − ℓ²/(2ℓ*)): increasing for ℓ < ℓ*, decreasing beyond (maximum a·ℓ*/2 at ℓ = ℓ*)."""
    return weight * (length - length * length / (2.0 * optimum))


@dataclass
class GoldParams:
    """The fixed parameters of r*: w [D−1], A [D−1, D−1], u [Dp], v [Dp] (see the module docstring)."""

    w: torch.Tensor
    A: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor


def gold_reward(features: torch.Tensor, psi: torch.Tensor, params: GoldParams, config: WorldConfig) -> torch.Tensor:
    """r*(x, y) = b(x) + s(x)·[w·φ₁: + c·Σ_j tanh(A φ₁:)_j + g(ℓ)] for features [P, C, D], ψ [P, Dp] -> [P, C]."""
    length, rest = features[..., 0], features[..., 1:]
    response_part = (rest @ params.w + config.interaction_weight * torch.tanh(rest @ params.A.T).sum(-1)
                     + length_term(length, config.length_weight, config.length_optimum))
    offset = config.prompt_offset_std * (psi @ params.u) / params.u.norm()
    scale = torch.exp(config.prompt_scale_std * (psi @ params.v) / params.v.norm())
    return offset[:, None] + scale[:, None] * response_part


def make_world(config: WorldConfig, seed: int) -> TabularWorld:
    """Sample a world (features, gold reward, policies) from ``seed``; the same seed gives the same world."""
    g = torch.Generator().manual_seed(seed)
    P, C, D, Dp = config.n_prompts, config.n_candidates, config.n_features, config.n_prompt_features

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    length = torch.exp(config.length_sigma * randn(P, C))
    features = torch.cat([length[..., None], randn(P, C, D - 1)], dim=-1)
    psi = randn(P, Dp)
    params = GoldParams(randn(D - 1) / math.sqrt(D - 1), 2 * randn(D - 1, D - 1) / math.sqrt(D - 1), randn(Dp),
                        randn(Dp))
    gold = gold_reward(features, psi, params, config)

    # π₀: diverse random logits, rarely long answers (so proxies trained on π₀ data never see the far tail).
    # "off": a verbose policy (prefers long responses) that produced the off-policy
    # data. "B": a second initial policy, already aligned with r* (a stronger SFT model), for policy dependence.
    s = config.policy_logit_std
    z_gold = (gold - gold.mean(1, keepdim=True)) / gold.std(1, keepdim=True)
    z_len = (length - length.mean(1, keepdim=True)) / length.std(1, keepdim=True)
    policies = {
        "pi0": s * randn(P, C) - config.length_aversion * torch.relu(z_len - 0.5),
        "off": s * randn(P, C) + 1.0 * z_len,
        "B": 0.5 * s * randn(P, C) + 3.0 * z_gold,
    }
    return TabularWorld(config, features, psi, gold, policies, params)


# ------------------------------------------------------------------------------------------------ policies
def probs(logits: torch.Tensor) -> torch.Tensor:
    """π(y|x) = softmax over the candidate axis (last)."""
    return torch.softmax(logits, dim=-1)


def expectation(logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """E_{y~π(x)} values(x, y) -> [..., P] (broadcasts over leading axes)."""
    return (probs(logits) * values).sum(-1)


def kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(π‖π_ref) per prompt -> [..., P]."""
    logp, logq = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def moments(values: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean and std of r(x, y) [..., P, C] over x ~ uniform, y ~ π(x), exactly -> two [..., 1, 1] tensors."""
    p = probs(logits) / logits.shape[-2]
    mean = (p * values).sum((-2, -1), keepdim=True)
    var = (p * (values - mean) ** 2).sum((-2, -1), keepdim=True)
    return mean, var.clamp_min(1e-24).sqrt()


def standardize(values: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Standardize rewards [..., P, C] with the global mean and std of r(x, y) over x ~ uniform, y ~ π(x),
    computed exactly (the population version of the global standardization in
    :func:`rewardlab.evaluate.metrics.reward_variance`)."""
    mean, std = moments(values, logits)
    return (values - mean) / std


def sample_responses(logits: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """m i.i.d. candidate indices per prompt from π -> [P, m] (long)."""
    return torch.multinomial(probs(logits), m, replacement=True, generator=generator)


# ------------------------------------------------------------------------------------------------ preferences
@dataclass
class Pairs:
    """Labelled preference pairs as indices: prompt [n], chosen [n], rejected [n] (candidate indices)."""

    prompt: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor

    def __len__(self) -> int:
        return int(self.prompt.numel())

    def take(self, idx: torch.Tensor) -> Pairs:
        return Pairs(self.prompt[idx], self.chosen[idx], self.rejected[idx])

    @staticmethod
    def cat(parts: list[Pairs]) -> Pairs:
        return Pairs(*(torch.cat([getattr(p, f) for p in parts]) for f in ("prompt", "chosen", "rejected")))


def preference_prob(gold_a: torch.Tensor, gold_b: torch.Tensor, temperature: float, noise: float) -> torch.Tensor:
    """P(label says a ≻ b) = (1 − ε)·σ(Δ/τ) + ε·σ(−Δ/τ), Δ = r*(a) − r*(b) (BT labels, then flipped w.p. ε)."""
    p = torch.sigmoid((gold_a - gold_b) / temperature)
    return (1.0 - noise) * p + noise * (1.0 - p)


def sample_pairs(world: TabularWorld, logits: torch.Tensor, n: int, generator: torch.Generator,
                 temperature: float | None = None, noise: float | None = None, gold_labels: bool = False) -> Pairs:
    """n preference pairs: x ~ uniform, a ~ π(x), b ~ π(x | b ≠ a), labelled by :func:`preference_prob`.

    ``gold_labels=True`` orders each pair by r* instead (noise-free; for evaluation sets).
    """
    cfg = world.config
    tau = cfg.label_temperature if temperature is None else temperature
    eps = cfg.label_noise if noise is None else noise
    x = torch.randint(0, world.n_prompts, (n,), generator=generator)
    p = probs(logits[x])
    a = torch.multinomial(p, 1, generator=generator).squeeze(1)
    p_b = p.scatter(1, a[:, None], 0.0)
    b = torch.multinomial(p_b / p_b.sum(1, keepdim=True), 1, generator=generator).squeeze(1)
    ga, gb = world.gold[x, a], world.gold[x, b]
    if gold_labels:
        a_wins = ga >= gb
    else:
        a_wins = torch.rand(n, generator=generator, dtype=torch.float64) < preference_prob(ga, gb, tau, eps)
    return Pairs(x, torch.where(a_wins, a, b), torch.where(a_wins, b, a))


# ------------------------------------------------------------------------------------------ constructed RMs
def low_variance_reward(world: TabularWorld, logits: torch.Tensor, factor: float = 0.1,
                        fraction: float = 0.9, seed: int = 0) -> torch.Tensor:
    """The "perfectly accurate, low-variance" RM of Razin et al.: on a random ``fraction`` of prompts, shrink r*
    toward its π-mean by ``factor``: r(x, y) = m(x) + c(x)·(r*(x, y) − m(x)), m(x) = E_π r*(x, ·), c(x) ∈ {factor, 1}.
    Within each prompt the order of r* is kept exactly (accuracy 1 on every pair), and the prompt offsets are
    kept, so after global standardization the within-prompt variance under π — the RV — is small."""
    g = torch.Generator().manual_seed(seed)
    m = expectation(logits, world.gold)[:, None]
    shrink = torch.rand(world.n_prompts, generator=g, dtype=torch.float64) < fraction
    c = torch.where(shrink, torch.full_like(m[:, 0], factor), torch.ones_like(m[:, 0]))[:, None]
    return m + c * (world.gold - m)


def _gold_z(world: TabularWorld) -> tuple[torch.Tensor, torch.Tensor]:
    """z = (r* − mean_y r*) / sd(x) over each prompt's candidates (uniform weights), and sd(x) [P, 1]."""
    g = world.gold
    sd = g.std(1, keepdim=True)
    return (g - g.mean(1, keepdim=True)) / sd, sd


def _focus_band(world: TabularWorld, focus_logits: torch.Tensor, width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The z-range where a policy writes: t_lo/t_hi(x) = E_focus z ∓ width·Std_focus z -> two [P, 1] tensors."""
    z, _ = _gold_z(world)
    ez = expectation(focus_logits, z)
    sz = (expectation(focus_logits, z * z) - ez**2).clamp_min(0).sqrt()
    return (ez - width * sz)[:, None], (ez + width * sz)[:, None]


def threshold_reward(world: TabularWorld, focus_logits: torch.Tensor, slope: float = 2.5,
                     floor_slope: float = 0.05, width: float = 1.0) -> torch.Tensor:
    """A perfectly accurate RM that resolves differences only where a given policy (the *focus*) writes:

        r(x, y) = m(x) + sd(x)·[ε·z + A·relu(z − t(x))],   z = (r* − mean_y r*) / sd(x) over the prompt's candidates,

    with t(x) = E_focus z − ``width``·Std_focus z (the lower edge of the focus policy's answers), m(x) = E_focus
    r*(x, ·) (the prompt offsets of r* are kept), A = ``slope``, ε = ``floor_slope`` > 0. Strictly increasing in r*
    within each prompt, so it orders every pair correctly; but nearly flat below t. For a focus policy that already
    writes good answers, this RM is a strong teacher of the focus policy and a weak one of a policy whose answers mostly
    lie below t — the same RM, two verdicts (Razin et al. 2025)."""
    z, sd = _gold_z(world)
    t, _ = _focus_band(world, focus_logits, width)
    m = expectation(focus_logits, world.gold)[:, None]
    return m + sd * (floor_slope * z + slope * torch.relu(z - t))


def band_reward(world: TabularWorld, focus_logits: torch.Tensor, slope: float = 2.5, floor_slope: float = 0.05,
                width: float = 1.0) -> torch.Tensor:
    """A perfectly accurate RM that is steep only on the z-band where the focus policy writes, flat on both sides:

        r(x, y) = mean_y r*(x, ·) + sd(x)·[ε·z + A·clip(z − t_lo(x), 0, t_hi(x) − t_lo(x))],

    z as in :func:`threshold_reward`, t_lo/t_hi = E_focus z ∓ ``width``·Std_focus z, A = ``slope``, ε = ``floor_slope``
    > 0. Strictly increasing in r* within each prompt (accuracy 1 on every pair, under any policy), yet the reward
    variance it induces under a policy, relative to another policy's, grows with the mass that policy puts inside the
    band: the building block of RMs whose RV ranking differs between two policies (Razin et al. 2025, "an RM that
    works well for one LM can induce low RV for another"). A non-negative mix w·band(π₀) + (1 − w)·band(B) is again
    perfectly accurate."""
    z, sd = _gold_z(world)
    lo, hi = _focus_band(world, focus_logits, width)
    return world.gold.mean(1, keepdim=True) + sd * (floor_slope * z + slope * (z - lo).clamp(min=0).minimum(hi - lo))


def neutral_pairs(world: TabularWorld, n: int, generator: torch.Generator) -> Pairs:
    """n evaluation pairs on a NEUTRAL distribution — x uniform, two distinct responses uniform over the candidates —
    ordered by r* (noise-free): the distribution off-policy accuracy is measured on (no policy's preferences in it)."""
    return sample_pairs(world, torch.zeros_like(world.gold), n, generator, gold_labels=True)
