"""Experiment 3 — Coste et al. 2023, "Reward Model Ensembles Help Mitigate Overoptimization".

With label noise (25% of the preference labels flipped, as in the paper), K proxies differing in initialization and
bootstrap resample of the same pairs are combined with :func:`rewardlab.rewards.ensemble.aggregate` — mean,
worst-case (WCO = min) and uncertainty-weighted (UWO = mean − λ·variance; λ = 0.5 for BoN, 0.1 for RL, after
standardizing each member under π₀) — and compared with a single member under best-of-n (exact, large n) and RL
(exact policy gradient, shared-feature policy). Every reward is standardized under π₀ before RL, so only its
shape matters. "Single RM" = the average outcome of the K members used alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.proxies import ProxySpec, pairs_for, train_proxy
from rewardlab.lab.tabular_rl import bon_curve, optimize
from rewardlab.lab.verdicts import Claim, all_of, check_sign, fmt
from rewardlab.lab.world import WorldConfig, make_world, standardize
from rewardlab.rewards.ensemble import aggregate

AGGREGATES = ("mean", "wco", "uwo")


@dataclass(frozen=True)
class CosteConfig:
    world: WorldConfig = field(default_factory=lambda: replace(WorldConfig(), label_noise=0.25))
    members: int = 4
    n_pairs: int = 1000
    hidden: int = 16
    lambda_bon: float = 0.5
    lambda_rl: float = 0.1
    bon_n: int = 4096
    rl_lr: float = 0.3
    rl_steps: int = 600
    rl_beta: float = 0.0
    proxy_steps: int = 300

    def units(self, n_seeds: int) -> int:
        return n_seeds * (self.members + 2)


def _ensemble_tables(members: torch.Tensor, lam: float) -> torch.Tensor:
    """[K, P, C] standardized members -> [3, P, C] aggregated (mean, wco, uwo) via rewards.ensemble.aggregate."""
    K, P, C = members.shape
    flat = members.reshape(K, P * C).T  # [n, K]
    return torch.stack([aggregate(flat, m, lam).reshape(P, C) for m in AGGREGATES])


def run_seed(cfg: CosteConfig, seed: int, advance: Advance = _noop) -> dict:
    world = make_world(cfg.world, seed)
    pi0 = world.policies["pi0"]
    spec = ProxySpec("member", cfg.n_pairs, 1.0, cfg.hidden, seed=seed * 1000, bootstrap=True)
    pairs = pairs_for(world, spec, torch.Generator().manual_seed(seed * 1000 + 7))
    members = []
    for j in range(cfg.members):
        members.append(train_proxy(world, replace(spec, seed=spec.seed + j + 1), pairs, steps=cfg.proxy_steps))
        advance(1)
    members_std = standardize(torch.stack(members), pi0)
    gold = standardize(world.gold, pi0)
    names = [f"member {j}" for j in range(cfg.members)] + list(AGGREGATES)
    # Best-of-n: aggregation with λ_bon; gold at n = bon_n (and the whole curve for the figure).
    bon_tables = torch.cat([members_std, _ensemble_tables(members_std, cfg.lambda_bon)])
    ns = [2**i for i in range(int(np.log2(cfg.bon_n)) + 1)]
    bon = bon_curve(pi0, bon_tables, gold, ns)
    bon_gold = (bon["gold"] - bon["gold"][0]).mean(-1)           # [len(ns), R]
    advance(1)
    # RL: aggregation with λ_rl, re-standardized under π₀.
    rl_tables = standardize(torch.cat([members_std, _ensemble_tables(members_std, cfg.lambda_rl)]), pi0)
    record = sorted({0} | {int(x) for x in np.unique(np.geomspace(1, cfg.rl_steps, 25).round())})
    traj = optimize(pi0, rl_tables, gold, beta=cfg.rl_beta, lr=cfg.rl_lr, steps=cfg.rl_steps, record=record,
                    features=world.features)
    rl_gold = (traj.stacked("gold") - traj.gold[0]).mean(-1)      # [T, R]
    advance(1)
    return {"names": names, "ns": ns, "bon_d": bon["kl"].mean(-1).clamp_min(0).sqrt().numpy(),
            "bon_gold": bon_gold.numpy(), "rl_steps": record, "rl_gold": rl_gold.numpy(),
            "rl_d": traj.stacked("kl").mean(-1).clamp_min(0).sqrt().numpy()}


def run(cfg: CosteConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def summarize(cfg: CosteConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    K = cfg.members
    final = {}
    for kind in ("bon", "rl"):
        final[kind] = {"single": [float(o[f"{kind}_gold"][-1][:K].mean()) for o in per_seed]}
        for j, a in enumerate(AGGREGATES):
            final[kind][a] = [float(o[f"{kind}_gold"][-1][K + j]) for o in per_seed]

    def diff(kind: str, agg: str) -> list[float]:
        return [a - s for a, s in zip(final[kind][agg], final[kind]["single"])]

    noise = f"{cfg.world.label_noise:.0%} label noise"
    claims = []
    for kind, label, at in (("bon", "best-of-n", f"n = {cfg.bon_n}"),
                            ("rl", "RL", f"after {cfg.rl_steps} steps (lr {cfg.rl_lr:g}, β {cfg.rl_beta:g})")):
        measured = "final gold gain: " + ", ".join(f"{k} {fmt(v)}" for k, v in final[kind].items())
        claims.append(Claim(
            f"coste-conservative-{kind}", "coste", "Coste et al. 2023",
            f"Under {label} with {noise}, conservative ensembles (WCO, UWO) end with more gold reward than a "
            "single RM", "ensemble (WCO/UWO) > single RM, larger gap at high KL",
            f"gold(WCO) − gold(single) and gold(UWO) − gold(single) both consistently > 0 over seeds, at {at}",
            measured + f"; WCO − single {fmt(diff(kind, 'wco'))}, UWO − single {fmt(diff(kind, 'uwo'))}",
            all_of(check_sign(diff(kind, "wco"), what="WCO"), check_sign(diff(kind, "uwo"), what="UWO")),
            {"final": final[kind]}))
    claims.append(Claim(
        "coste-mean", "coste", "Coste et al. 2023",
        f"With {noise}, even the mean ensemble ends with more gold reward than a single RM (BoN and RL)",
        "mean ensemble > single RM",
        "gold(mean) − gold(single) consistently > 0 over seeds under both BoN and RL",
        f"BoN {fmt(diff('bon', 'mean'))}; RL {fmt(diff('rl', 'mean'))}",
        all_of(check_sign(diff("bon", "mean"), what="BoN"), check_sign(diff("rl", "mean"), what="RL")),
        {"bon": diff("bon", "mean"), "rl": diff("rl", "mean")}))
    lines = [f"[coste] {c.id}: {c.measured} -> {c.verdict}" for c in claims]
    data = {"members": K, "aggregates": list(AGGREGATES), "final": final, "per_seed": per_seed,
            "label_noise": cfg.world.label_noise}
    return ExperimentResult("coste", "Coste et al. 2023 — reward-model ensembles", claims, data, lines)
