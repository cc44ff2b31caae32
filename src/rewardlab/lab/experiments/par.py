"""Experiment 4 — PAR (Fu et al. 2025, "Reward Shaping to Mitigate Reward Hacking in RLHF").

The proxy with the least data is optimized by RL (exact policy gradient, shared-feature policy, KL penalty β) for
long enough to reach high KL, three ways: raw (standardized under π₀); PAR-shaped as the paper defines it with
:func:`rewardlab.rewards.shaping.par_shape`, r'(x, y) = (1/M) Σ_m σ(r(x, y) − r(x, y_ref^m)) ∈ (0, 1), with M
reference answers per prompt sampled once from π₀; and a control: the raw reward rescaled to PAR's π₀ standard
deviation. PAR is bounded *and* smaller in scale (like a larger β); the control separates the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.proxies import ProxySpec, train_proxy
from rewardlab.lab.tabular_rl import optimize
from rewardlab.lab.verdicts import Claim, check_sign, fmt
from rewardlab.lab.world import WorldConfig, make_world, moments, sample_responses, standardize
from rewardlab.rewards.shaping import par_shape

ARMS = ("raw", "raw at PAR's scale", "PAR")


@dataclass(frozen=True)
class PARConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    n_pairs: int = 100
    hidden: int = 16
    references: int = 2       # M reference answers per prompt
    beta: float = 0.05
    rl_lr: float = 0.3
    rl_steps: int = 1000
    proxy_steps: int = 300

    def units(self, n_seeds: int) -> int:
        return n_seeds * 2


def run_seed(cfg: PARConfig, seed: int, advance: Advance = _noop) -> dict:
    world = make_world(cfg.world, seed)
    pi0 = world.policies["pi0"]
    proxy = standardize(train_proxy(world, ProxySpec("proxy", cfg.n_pairs, 1.0, cfg.hidden, seed * 1000 + 3),
                                    steps=cfg.proxy_steps), pi0)
    advance(1)
    refs = sample_responses(pi0, cfg.references, torch.Generator().manual_seed(seed + 99))  # [P, M]
    P, C = proxy.shape
    r_ref = proxy.gather(1, refs)                                         # [P, M]
    shaped = par_shape(proxy.reshape(-1), r_ref.repeat_interleave(C, 0)).reshape(P, C)
    _, shaped_sd = moments(shaped, pi0)                                   # PAR's std under π₀
    tables = torch.stack([proxy, proxy * shaped_sd, shaped])
    gold = standardize(world.gold, pi0)
    record = sorted({0} | {int(x) for x in np.unique(np.geomspace(1, cfg.rl_steps, 30).round())})
    traj = optimize(pi0, tables, gold, beta=cfg.beta, lr=cfg.rl_lr, steps=cfg.rl_steps, record=record,
                    features=world.features)
    advance(1)
    return {"steps": record, "gold": (traj.stacked("gold") - traj.gold[0]).mean(-1).numpy(),
            "d": traj.stacked("kl").mean(-1).clamp_min(0).sqrt().numpy(), "names": list(ARMS)}


def run(cfg: PARConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def summarize(cfg: PARConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    final = {name: [float(o["gold"][-1][j]) for o in per_seed] for j, name in enumerate(ARMS)}
    kl_end = {name: [float(o["d"][-1][j] ** 2) for o in per_seed] for j, name in enumerate(ARMS)}
    peak = {name: [float(o["gold"][:, j].max()) for o in per_seed] for j, name in enumerate(ARMS)}
    diff = [p - r for p, r in zip(final["PAR"], final["raw"])]
    diff_scaled = [p - r for p, r in zip(final["PAR"], final[ARMS[1]])]
    claim = Claim(
        "par-high-kl", "par", "Fu et al. 2025 (PAR)",
        "Shaping the reward with PAR (σ of the margin over reference answers) prevents the gold collapse of long "
        "RL against a hackable proxy",
        "PAR keeps gold high where the raw proxy's gold collapses",
        f"gold(PAR) − gold(raw) after {cfg.rl_steps} steps (β {cfg.beta:g}, lr {cfg.rl_lr:g}) consistently > 0",
        f"final gold gain raw {fmt(final['raw'])}, PAR {fmt(final['PAR'])} (difference {fmt(diff)}); peak gold raw "
        f"{fmt(peak['raw'])}, PAR {fmt(peak['PAR'])}; final KL raw {fmt(kl_end['raw'])}, PAR {fmt(kl_end['PAR'])}",
        check_sign(diff), {"final": final, "kl_end": kl_end, "peak": peak})
    shape = Claim(
        "par-shape", "par", "Fu et al. 2025 (PAR)",
        "PAR's benefit is more than a smaller reward scale: it also beats the raw reward rescaled to PAR's π₀ std",
        "(not tested in the paper — a control added here)",
        "gold(PAR) − gold(raw at PAR's scale) at the end consistently > 0",
        f"final gold gain raw at PAR's scale {fmt(final[ARMS[1]])} vs PAR {fmt(final['PAR'])} (difference "
        f"{fmt(diff_scaled)}); final KL {fmt(kl_end[ARMS[1]])} vs {fmt(kl_end['PAR'])}",
        check_sign(diff_scaled), {"difference": diff_scaled})
    lines = [f"[par] {c.id}: {c.measured} -> {c.verdict}" for c in (claim, shape)]
    return ExperimentResult("par", "PAR — preference-as-reward shaping at high KL", [claim, shape],
                            {"per_seed": per_seed, "references": cfg.references}, lines)
