"""Experiment 1 — Razin et al. 2025, "What Makes a Reward Model a Good Teacher? An Optimization Perspective".

A zoo of proxies (trained with the BT loss on on-/off-policy mixes, data amounts, linear/MLP) plus three
constructed rewards (r* itself; the perfectly accurate low-variance RM; a perfectly accurate "threshold" RM) teach
a tabular softmax policy with RLOO (k = 2, β = 0.05) and with the exact policy gradient, at two learning rates.
Each reward is standardized under the policy it teaches (so only its shape, not its scale, matters). Measured:
gold gain after an early and a late budget vs RV, on-policy and off-policy accuracy (Pearson and Spearman
across the trained proxies), per prompt as well as on average, for two initial policies (π₀ and "B").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.evaluate.metrics import pearson, spearman
from rewardlab.lab.common import Advance, ExperimentResult, _noop, teacher_metrics
from rewardlab.lab.proxies import ProxySpec, train_proxy
from rewardlab.lab.tabular_rl import optimize
from rewardlab.lab.verdicts import Claim, all_of, check_sign, fmt, mean
from rewardlab.lab.world import (
    WorldConfig,
    low_variance_reward,
    make_world,
    sample_pairs,
    standardize,
    threshold_reward,
)

POLICIES = ("pi0", "B")
METHODS = ("rloo", "exact")
METRICS = ("rv", "on_acc", "off_acc")


@dataclass(frozen=True)
class RazinConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    n_pairs: tuple[int, ...] = (100, 1000)
    on_policy_fractions: tuple[float, ...] = (0.0, 0.5, 1.0)
    hidden_sizes: tuple[int, ...] = (0, 16)
    beta: float = 0.05
    k: int = 2
    lrs: tuple[float, ...] = (0.3, 1.0)
    early: int = 20
    late: int = 200
    m_samples: int = 16          # responses per prompt for RV / on-policy accuracy
    eval_pairs: int = 2000       # off-policy evaluation pairs (from the off-policy policy, ordered by r*)
    lowvar_factor: float = 0.1
    lowvar_fraction: float = 0.9
    threshold_slope: float = 2.5  # threshold RM: steep above the gold level of policy B's answers
    proxy_steps: int = 300

    def units(self, n_seeds: int) -> int:
        return n_seeds * (len(self.proxy_specs(0)) + len(POLICIES) * len(METHODS) * len(self.lrs))

    def proxy_specs(self, seed: int) -> list[ProxySpec]:
        specs = []
        for h in self.hidden_sizes:
            for n in self.n_pairs:
                for f in self.on_policy_fractions:
                    name = f"{'mlp' if h else 'linear'}·{n}p·{int(round(100 * f))}%on"
                    specs.append(ProxySpec(name, n, f, h, seed=seed * 1000 + len(specs)))
        return specs


CONSTRUCTED = ("gold r*", "perfect, low-RV", "perfect, threshold")


def run_seed(cfg: RazinConfig, seed: int, advance: Advance = _noop) -> dict:
    """All measurements of one seed (one world): names, metrics per policy, gains per setting."""
    world = make_world(cfg.world, seed)
    specs = cfg.proxy_specs(seed)
    tables = []
    for spec in specs:
        tables.append(train_proxy(world, spec, steps=cfg.proxy_steps))
        advance(1)
    pi0 = world.policies["pi0"]
    tables += [world.gold, low_variance_reward(world, pi0, cfg.lowvar_factor, cfg.lowvar_fraction, seed),
               threshold_reward(world, world.policies["B"], cfg.threshold_slope)]
    tables = torch.stack(tables)
    names = [s.name for s in specs] + list(CONSTRUCTED)
    g = torch.Generator().manual_seed(seed + 12345)
    eval_pairs = sample_pairs(world, world.policies["off"], cfg.eval_pairs, g, gold_labels=True)
    out: dict = {"names": names, "n_trained": len(specs), "metrics": {}, "gain": {}, "curves": {},
                 "per_prompt_gain": {}}
    steps = sorted({0, cfg.early, cfg.late} | {int(x) for x in np.linspace(0, cfg.late, 11)})
    for pol in POLICIES:
        ref = world.policies[pol]
        met = teacher_metrics(world, tables, ref, eval_pairs, cfg.m_samples, g)
        out["metrics"][pol] = met
        std_tables, gold = standardize(tables, ref), standardize(world.gold, ref)
        for method in METHODS:
            for lr in cfg.lrs:
                traj = optimize(ref, std_tables, gold, beta=cfg.beta, lr=lr, steps=cfg.late, record=steps,
                                method=method, k=cfg.k, generator=g)
                gains = traj.stacked("gold") - traj.gold[0]            # [T, R, P]
                key = f"{pol}|{method}|{lr:g}"
                out["curves"][key] = {"steps": traj.steps, "gain": gains.mean(-1).numpy()}
                for budget in (cfg.early, cfg.late):
                    per_prompt = gains[traj.steps.index(budget)]      # [R, P]
                    out["gain"][f"{key}|{budget}"] = per_prompt.mean(-1).numpy()
                    out["per_prompt_gain"][f"{key}|{budget}"] = per_prompt.numpy()
                advance(1)
    return out


def _corrs(seed_out: dict, key: str, pol: str) -> dict[str, tuple[float, float]]:
    """(Pearson, Spearman) across the trained proxies of the gain at ``key`` vs each metric under ``pol``."""
    n = seed_out["n_trained"]
    gain = seed_out["gain"][key][:n]
    return {m: (pearson(seed_out["metrics"][pol][m][:n], gain), spearman(seed_out["metrics"][pol][m][:n], gain))
            for m in METRICS}


def run(cfg: RazinConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def summarize(cfg: RazinConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    names = per_seed[0]["names"]
    i_low, i_gold, i_th = names.index(CONSTRUCTED[1]), names.index(CONSTRUCTED[0]), names.index(CONSTRUCTED[2])
    # The "less accurate, higher-variance" RM: per seed, the trained proxy with the highest RV under π₀.
    i_refs = [int(np.argmax(o["metrics"]["pi0"]["rv"][:o["n_trained"]])) for o in per_seed]
    lr0, lr1 = cfg.lrs[0], cfg.lrs[-1]
    primary = f"pi0|rloo|{lr0:g}|{cfg.early}"

    # Correlation table: every (policy, method, lr, budget), Spearman/Pearson per metric, per seed.
    corr_rows = []
    for pol in POLICIES:
        for method in METHODS:
            for lr in cfg.lrs:
                for budget in (cfg.early, cfg.late):
                    key = f"{pol}|{method}|{lr:g}|{budget}"
                    cs = [_corrs(o, key, pol) for o in per_seed]
                    corr_rows.append({"policy": pol, "method": method, "lr": lr, "steps": budget, **{
                        f"{kind}_{m}": [c[m][j] for c in cs] for m in METRICS
                        for j, kind in ((0, "pearson"), (1, "spearman"))}})
    prim = next(r for r in corr_rows if f"{r['policy']}|{r['method']}|{r['lr']:g}|{r['steps']}" == primary)
    holds = [mean(r["spearman_rv"]) > max(mean(r["spearman_on_acc"]), mean(r["spearman_off_acc"]))
             for r in corr_rows]
    c1 = Claim(
        "razin-rv-vs-acc", "razin", "Razin et al. 2025",
        "Reward variance under the policy predicts how fast the gold reward rises better than accuracy does",
        "corr(gain, RV) > corr(gain, accuracy), on- and off-policy",
        f"mean over seeds of Spearman ρ(gold gain, metric) across the {per_seed[0]['n_trained']} trained proxies, "
        f"π₀, RLOO k={cfg.k}, β={cfg.beta}, lr={lr0:g}, after {cfg.early} steps: ρ(RV) > ρ(on-acc) and "
        f"ρ(RV) > ρ(off-acc)",
        f"ρ(RV)={fmt(prim['spearman_rv'])}, ρ(on-acc)={fmt(prim['spearman_on_acc'])}, "
        f"ρ(off-acc)={fmt(prim['spearman_off_acc'])}; holds in {sum(holds)}/{len(holds)} "
        f"(policy, method, lr, budget) settings",
        all_of(check_sign([a - b for a, b in zip(prim["spearman_rv"], prim["spearman_on_acc"])],
                          what="ρ(RV) − ρ(on-acc)"),
               check_sign([a - b for a, b in zip(prim["spearman_rv"], prim["spearman_off_acc"])],
                          what="ρ(RV) − ρ(off-acc)")),
        {"primary": prim, "settings_holding": int(sum(holds)), "settings": len(holds)})

    def diffs(key: str, a: int | list[int], b: int) -> list[float]:
        a_s = a if isinstance(a, list) else [a] * len(per_seed)
        return [float(o["gain"][key][ai] - o["gain"][key][b]) for o, ai in zip(per_seed, a_s)]

    def metric(pol: str, m: str, i: int | list[int]) -> list[float]:
        i_s = i if isinstance(i, list) else [i] * len(per_seed)
        return [float(o["metrics"][pol][m][ii]) for o, ii in zip(per_seed, i_s)]

    d_early = diffs(primary, i_refs, i_low)
    budgets = {f"lr={lr:g}, {b} steps": diffs(f"pi0|rloo|{lr:g}|{b}", i_refs, i_low)
               for lr in cfg.lrs for b in (cfg.early, cfg.late)}
    c2 = Claim(
        "razin-lowvar-slow", "razin", "Razin et al. 2025",
        "A perfectly accurate RM with low reward variance raises the gold reward more slowly than a less accurate "
        "RM with higher variance",
        "gain(less accurate, higher RV) > gain(perfectly accurate, low RV) early in training",
        f"gain(highest-RV trained proxy) − gain(perfect, low-RV) > 0 consistently over seeds (mean > 0 and ≥ 75% "
        f"of seeds) — π₀, RLOO, lr={lr0:g}, {cfg.early} steps",
        f"proxy ({', '.join(names[i] for i in i_refs)}) vs perfect low-RV: "
        f"on-acc {fmt(metric('pi0', 'on_acc', i_refs))} vs {fmt(metric('pi0', 'on_acc', i_low))}; "
        f"RV {fmt(metric('pi0', 'rv', i_refs))} vs {fmt(metric('pi0', 'rv', i_low))}; gain difference "
        + "; ".join(f"{k}: {fmt(v)}" for k, v in budgets.items()),
        check_sign(d_early), {"difference_by_budget": budgets, "proxy_index": i_refs})

    th_vs_gold = {pol: diffs(f"{pol}|rloo|{lr0:g}|{cfg.early}", i_th, i_gold) for pol in POLICIES}
    c3 = Claim(
        "razin-policy-dependent", "razin", "Razin et al. 2025",
        "The same (perfectly accurate) RM can be a worse teacher than r* for one initial policy and a better one "
        "for another, because RV depends on the policy",
        "teacher ranking flips between initial policies",
        f"gain(threshold) − gain(r*) consistently < 0 under π₀ AND consistently > 0 under B (RLOO, lr={lr0:g}, "
        f"{cfg.early} steps)",
        f"RV(threshold) under π₀ {fmt(metric('pi0', 'rv', i_th))}, under B {fmt(metric('B', 'rv', i_th))}; "
        f"RV(r*) under π₀ {fmt(metric('pi0', 'rv', i_gold))}, under B {fmt(metric('B', 'rv', i_gold))}; "
        f"gain difference under π₀ {fmt(th_vs_gold['pi0'])}, under B {fmt(th_vs_gold['B'])}",
        all_of(check_sign(th_vs_gold["pi0"], -1, "under π₀"), check_sign(th_vs_gold["B"], 1, "under B")),
        th_vs_gold)

    # RV measured under the *trained* policy vs under the other one, as a predictor of the gain.
    own, other = [], []
    for o in per_seed:
        n = o["n_trained"]
        for pol, alt in (("pi0", "B"), ("B", "pi0")):
            gain = o["gain"][f"{pol}|rloo|{lr0:g}|{cfg.early}"][:n]
            own.append(spearman(o["metrics"][pol]["rv"][:n], gain))
            other.append(spearman(o["metrics"][alt]["rv"][:n], gain))
    c4 = Claim(
        "razin-rv-policy-specific", "razin", "Razin et al. 2025",
        "RMs cannot be judged independently of the policy: RV measured under the policy being trained predicts "
        "its gain better than RV measured under another policy",
        "ρ(gain, RV under own policy) > ρ(gain, RV under other policy)",
        "Spearman over trained proxies, both policies × seeds: mean ρ(own) − ρ(other) > 0 consistently",
        f"ρ(own)={fmt(own)}, ρ(other)={fmt(other)}",
        check_sign([a - b for a, b in zip(own, other)]), {"own": own, "other": other})

    lines = [f"[razin] {c.id}: {c.measured} -> {c.verdict}" for c in (c1, c2, c3, c4)]
    data = {"names": names, "n_trained": per_seed[0]["n_trained"], "reference_proxy": i_refs,
            "primary": primary, "early": cfg.early, "late": cfg.late, "lrs": list(cfg.lrs), "corr_rows": corr_rows,
            "per_seed": per_seed, "lowvar_fraction": cfg.lowvar_fraction, "lr_pair": [lr0, lr1]}
    return ExperimentResult("razin", "Razin et al. 2025 — what makes a reward model a good teacher",
                            [c1, c2, c3, c4], data, lines)
