"""Experiment 3 — Coste et al. 2023, "Reward Model Ensembles Help Mitigate Overoptimization".

With label noise (25% of the preference labels flipped, as in the paper), K proxies differing in initialization and
bootstrap resample of the same pairs are combined with :func:`rewardlab.rewards.ensemble.aggregate` — mean,
worst-case (WCO = min) and uncertainty-weighted (UWO = mean − λ·variance; λ = 0.5 for BoN, 0.1 for RL, after
standardizing each member under π₀) — and compared with a single member and with each other under best-of-n
(exact, large n) and RL (exact policy gradient, shared-feature policy). Every reward is standardized under π₀ before
RL, so only its shape matters. "Single RM" = the average outcome of the K members used alone.

Label-noise sweep: the same pairs (same prompts, answers and uniform draws, so only the flips differ) are labelled
with each noise level ε in ``noise_levels`` (P(flip) = ε), members are retrained, and the ensembles' benefit
gold(ensemble) − gold(single) is measured at each level; Coste et al. find the benefit larger with noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.proxies import FeatureRM, ProxySpec, centre_per_prompt, pairs_for
from rewardlab.lab.tabular_rl import bon_curve, optimize
from rewardlab.lab.verdicts import Claim, all_of, check_sign, fmt, mean
from rewardlab.lab.world import Pairs, TabularWorld, WorldConfig, make_world, moments, standardize
from rewardlab.rewards.ensemble import aggregate
from rewardlab.train.losses import bt_loss

AGGREGATES = ("mean", "wco", "uwo")
NAMES = {"mean": "mean", "wco": "WCO", "uwo": "UWO"}
KINDS = (("bon", "best-of-n"), ("rl", "RL"))


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
    noise_levels: tuple[float, ...] = (0.0, 0.25, 0.4)  # the sweep (the main level world.label_noise is reused)

    def levels(self) -> list[float]:
        return sorted(set(self.noise_levels) | {self.world.label_noise})

    def units(self, n_seeds: int) -> int:
        return n_seeds * (self.members + 2) * len(self.levels())


def _ensemble_tables(members: torch.Tensor, lam: float) -> torch.Tensor:
    """[K, P, C] standardized members -> [3, P, C] aggregated (mean, wco, uwo) via rewards.ensemble.aggregate."""
    K, P, C = members.shape
    flat = members.reshape(K, P * C).T  # [n, K]
    return torch.stack([aggregate(flat, m, lam).reshape(P, C) for m in AGGREGATES])


def train_members(world: TabularWorld, spec: ProxySpec, pair_sets: list[Pairs], k: int, steps: int,
                  lr: float = 0.03, weight_decay: float = 1e-3) -> torch.Tensor:
    """k ensemble members on each of the pair sets (equal sizes), all at once: member j of a set is what
    ``train_proxy(world, replace(spec, seed=spec.seed + j + 1), pairs, steps)`` returns (same bootstrap resample,
    same FeatureRM initialization, full-batch AdamW on the mean BT loss), with the MLPs' weights stacked and applied
    by batched matmuls (Linear → SiLU → Linear, as FeatureRM). The losses are summed over members, so each member's
    gradient and (elementwise) AdamW update are its own: equal to separate training up to float32 rounding (tested),
    several times faster. Returns scores [len(pair_sets) · k, P, C], set-major, centred per prompt (as train_proxy's:
    the batched loss concatenates chosen and rejected, so its prompt-feature gradient is rounding noise)."""
    inputs = world.inputs().float()
    n = len(pair_sets[0])
    layers, xc, xr = [], [], []
    for j in range(k):
        seed = spec.seed + j + 1
        boot = torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)
        model = FeatureRM(inputs.shape[-1], spec.hidden)
        layers.append([m for m in model.modules() if isinstance(m, nn.Linear)])
        for i, pairs in enumerate(pair_sets):
            xc.append((i, j, inputs[pairs.prompt[boot], pairs.chosen[boot]]))
            xr.append((i, j, inputs[pairs.prompt[boot], pairs.rejected[boot]]))
    order = sorted(range(len(xc)), key=lambda m: xc[m][:2])                  # set-major, then member
    x = torch.stack([torch.cat([xc[m][2], xr[m][2]]) for m in order])       # [B, 2n, in]: chosen, then rejected
    init = [layers[xc[m][1]] for m in order]
    weights = [torch.stack([ls[i].weight.detach() for ls in init]).transpose(1, 2).requires_grad_()
               for i in range(len(init[0]))]                                  # [B, in, out] per layer
    biases = [torch.stack([ls[i].bias.detach() for ls in init])[:, None, :].requires_grad_()
              for i in range(len(init[0]))]                                   # [B, 1, out]

    def score(x: torch.Tensor) -> torch.Tensor:                               # [B, m, in] -> [B, m]
        for i, (w, b) in enumerate(zip(weights, biases)):
            x = torch.baddbmm(b, x, w)
            x = torch.nn.functional.silu(x) if i < len(weights) - 1 else x
        return x.squeeze(-1)

    opt = torch.optim.AdamW([*weights, *biases], lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        s = score(x)
        bt_loss(s[:, :n], s[:, n:]).mean(1).sum().backward()
        opt.step()
    with torch.no_grad():
        flat = inputs.reshape(1, -1, inputs.shape[-1]).expand(len(order), -1, -1)
        return centre_per_prompt(score(flat).reshape(len(order), *inputs.shape[:2]).double())


def run_seed(cfg: CosteConfig, seed: int, advance: Advance = _noop) -> dict:
    """Members at every noise level (the same pairs, relabelled), then BoN and RL on all members and ensembles of
    all levels in one pass; the main level (world.label_noise) gives the curves, every level its final gold."""
    world = make_world(cfg.world, seed)
    pi0, K, levels = world.policies["pi0"], cfg.members, cfg.levels()
    spec = ProxySpec("member", cfg.n_pairs, 1.0, cfg.hidden, seed=seed * 1000, bootstrap=True)
    pair_sets = [pairs_for(world, spec, torch.Generator().manual_seed(seed * 1000 + 7), noise=level)
                 for level in levels]
    members = standardize(train_members(world, spec, pair_sets, K, cfg.proxy_steps), pi0)
    members = members.reshape(len(levels), K, *members.shape[1:])            # [L, K, P, C]
    advance(K * len(levels))
    gold = standardize(world.gold, pi0)
    # Best-of-n: aggregation with λ_bon; gold at n = bon_n (and the whole curve for the figure).
    bon_tables = torch.cat([torch.cat([m, _ensemble_tables(m, cfg.lambda_bon)]) for m in members])
    ns = [2**i for i in range(int(np.log2(cfg.bon_n)) + 1)]
    bon = bon_curve(pi0, bon_tables, gold, ns)
    bon_gold = (bon["gold"] - bon["gold"][0]).mean(-1)                       # [len(ns), L · (K + 3)]
    advance(len(levels))
    # RL: aggregation with λ_rl, re-standardized under π₀.
    rl_tables = standardize(torch.cat([torch.cat([m, _ensemble_tables(m, cfg.lambda_rl)]) for m in members]), pi0)
    record = sorted({0} | {int(x) for x in np.unique(np.geomspace(1, cfg.rl_steps, 25).round())})
    traj = optimize(pi0, rl_tables, gold, beta=cfg.rl_beta, lr=cfg.rl_lr, steps=cfg.rl_steps, record=record,
                    features=world.features)
    rl_gold = (traj.stacked("gold") - traj.gold[0]).mean(-1)                 # [T, L · (K + 3)]
    advance(len(levels))
    R = K + len(AGGREGATES)
    i = levels.index(cfg.world.label_noise)
    main = slice(i * R, (i + 1) * R)
    sweep = {"levels": levels, "bon": [bon_gold[-1, j * R:(j + 1) * R].numpy() for j in range(len(levels))],
             "rl": [rl_gold[-1, j * R:(j + 1) * R].numpy() for j in range(len(levels))]}
    return {"names": [f"member {j}" for j in range(K)] + list(AGGREGATES), "ns": ns,
            "bon_d": bon["kl"][:, main].mean(-1).clamp_min(0).sqrt().numpy(), "bon_gold": bon_gold[:, main].numpy(),
            "rl_steps": record, "rl_gold": rl_gold[:, main].numpy(),
            "rl_d": traj.stacked("kl")[:, main].mean(-1).clamp_min(0).sqrt().numpy(),
            "member_spread": float(moments(members[i].std(0, unbiased=False), pi0)[0]),  # E_π₀ of the members' sd
            "sweep": sweep}


def run(cfg: CosteConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def _gaps(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b)]


def _below(values: list[float]) -> str:
    return f"{sum(v < 0 for v in values)}/{len(values)}"


def summarize(cfg: CosteConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    K = cfg.members
    final = {}
    for kind, _ in KINDS:
        final[kind] = {"single": [float(np.mean(o[f"{kind}_gold"][-1][:K])) for o in per_seed]}
        for j, a in enumerate(AGGREGATES):
            final[kind][a] = [float(o[f"{kind}_gold"][-1][K + j]) for o in per_seed]

    def diff(kind: str, agg: str, base: str = "single") -> list[float]:
        return _gaps(final[kind][agg], final[kind][base])

    noise = f"{cfg.world.label_noise:.0%} label noise"
    spread = [float(o.get("member_spread", np.nan)) for o in per_seed]
    claims = []
    for kind, label in KINDS:
        at = (f"n = {cfg.bon_n}" if kind == "bon"
              else f"after {cfg.rl_steps} steps (lr {cfg.rl_lr:g}, β {cfg.rl_beta:g})")
        lam = cfg.lambda_bon if kind == "bon" else cfg.lambda_rl
        measured = "final gold gain: " + ", ".join(f"{k} {fmt(v)}" for k, v in final[kind].items())
        w, u = diff(kind, "wco"), diff(kind, "uwo")
        claims.append(Claim(
            f"coste-conservative-{kind}", "coste", "Coste et al. 2023",
            f"Under {label} with {noise}, conservative ensembles (WCO, UWO) end with more gold reward than a "
            "single RM", "ensemble (WCO/UWO) > single RM, larger gap at high KL",
            f"gold(WCO) − gold(single) and gold(UWO) − gold(single) both consistently > 0 over seeds, at {at}",
            measured + f"; WCO − single {fmt(w)}, UWO − single {fmt(u)}",
            all_of(check_sign(w, what="WCO"), check_sign(u, what="UWO")), {"final": final[kind]},
            f"WCO is below the single RM in {_below(w)} seeds, UWO in {_below(u)}; the single RM's final gold is "
            f"{fmt(final[kind]['single'])}"))
        wm, um = diff(kind, "wco", "mean"), diff(kind, "uwo", "mean")
        claims.append(Claim(
            f"coste-vs-mean-{kind}", "coste", "Coste et al. 2023",
            f"Under {label} with {noise}, conservative ensembles (WCO, UWO) end with more gold reward than the mean "
            "ensemble", "WCO/UWO ≥ mean ensemble (conservatism, not averaging alone, helps)",
            f"gold(WCO) − gold(mean) and gold(UWO) − gold(mean) both consistently > 0 over seeds, at {at}",
            f"WCO − mean {fmt(wm)}, UWO − mean {fmt(um)}",
            all_of(check_sign(wm, what="WCO"), check_sign(um, what="UWO")), {"wco": wm, "uwo": um},
            f"WCO is below the mean ensemble in {_below(wm)} seeds ({fmt(wm)}), UWO in {_below(um)} ({fmt(um)}); "
            f"the members' sd under π₀ is {fmt(spread)} σ, so the UWO penalty λ·var is ≈ "
            f"{lam * mean(spread) ** 2:.3f} σ (λ = {lam:g}) on a typical answer"))
    bm, rm = diff("bon", "mean"), diff("rl", "mean")
    claims.append(Claim(
        "coste-mean", "coste", "Coste et al. 2023",
        f"With {noise}, even the mean ensemble ends with more gold reward than a single RM (BoN and RL)",
        "mean ensemble > single RM",
        "gold(mean) − gold(single) consistently > 0 over seeds under both BoN and RL",
        f"BoN {fmt(bm)}; RL {fmt(rm)}",
        all_of(check_sign(bm, what="BoN"), check_sign(rm, what="RL")), {"bon": bm, "rl": rm},
        f"the mean ensemble is below the single RM in {_below(bm)} seeds under BoN and {_below(rm)} under RL"))
    benefit = _benefits(K, per_seed)
    levels = [float(x) for x in per_seed[0]["sweep"]["levels"]] if per_seed else []
    if len(levels) >= 2:
        claims += [_noise_claim(kind, label, levels, benefit[kind]) for kind, label in KINDS]
    lines = [f"[coste] {c.id}: {c.measured} -> {c.verdict}" for c in claims]
    data = {"members": K, "aggregates": list(AGGREGATES), "final": final, "per_seed": per_seed,
            "label_noise": cfg.world.label_noise, "noise_levels": levels, "benefit": benefit}
    return ExperimentResult("coste", "Coste et al. 2023 — reward-model ensembles", claims, data, lines)


def _benefits(K: int, per_seed: list[dict]) -> dict:
    """benefit[kind][agg] = per seed, per noise level: final gold(agg) − mean final gold of the K members."""
    out = {}
    for kind, _ in KINDS:
        out[kind] = {a: [[float(f[K + j] - np.mean(f[:K])) for f in o["sweep"][kind]] for o in per_seed]
                     for j, a in enumerate(AGGREGATES)}
    return out


def _noise_claim(kind: str, label: str, levels: list[float], benefit: dict) -> Claim:
    """Does the benefit of the conservative ensembles grow with label noise? Per seed: the least-squares slope of
    benefit against the noise level, reported per +10 percentage points."""
    slopes = {a: [float(np.polyfit(levels, b, 1)[0]) * 0.1 for b in benefit[a]] for a in AGGREGATES}
    by_level = {a: [mean([b[i] for b in benefit[a]]) for i in range(len(levels))] for a in AGGREGATES}
    pct = "/".join(f"{x:.0%}" for x in levels)
    table = "; ".join(f"{NAMES[a]} " + "/".join(f"{v:+.2f}" for v in by_level[a]) for a in AGGREGATES)
    return Claim(
        f"coste-noise-{kind}", "coste", "Coste et al. 2023",
        f"Under {label}, the benefit of conservative ensembles (WCO, UWO) over a single RM grows with label noise",
        "ensembles help more with noisier labels",
        f"per seed, the least-squares slope of gold(ensemble) − gold(single) against label noise {pct}, for WCO and "
        "for UWO, both consistently > 0 over seeds",
        f"mean benefit over a single RM at {pct}: {table}; slope per +10 pp noise: "
        + ", ".join(f"{NAMES[a]} {fmt(slopes[a])}" for a in AGGREGATES),
        all_of(check_sign(slopes["wco"], what="WCO"), check_sign(slopes["uwo"], what="UWO")),
        {"levels": levels, "slopes": slopes, "benefit": benefit},
        f"the slope is ≤ 0 in {sum(s <= 0 for s in slopes['wco'])}/{len(slopes['wco'])} seeds for WCO and "
        f"{sum(s <= 0 for s in slopes['uwo'])}/{len(slopes['uwo'])} for UWO; benefit at {levels[0]:.0%} vs "
        f"{levels[-1]:.0%}: WCO {by_level['wco'][0]:+.2f} vs {by_level['wco'][-1]:+.2f}, UWO "
        f"{by_level['uwo'][0]:+.2f} vs {by_level['uwo'][-1]:+.2f}")
