"""Experiment 1 — Razin et al. 2025, "What Makes a Reward Model a Good Teacher? An Optimization Perspective".

A zoo of proxies (trained with the BT loss on on-/off-policy mixes, data amounts, linear/MLP) plus constructed
perfectly accurate rewards — r* itself; the low-variance RM; a "threshold" RM steep only above the mean gold level of
policy B's answers (nearly flat where π₀ mostly writes); and a *focused family* w·band(π₀) + (1 − w)·band(B) at two
steepness levels, steep only on the z-band where π₀ (w = 1) or B (w = 0) writes — teach a tabular softmax policy with
RLOO (k = 2, β = 0.05) and with the exact policy gradient, at two learning rates, from two initial policies (π₀ and
"B"). Each reward is standardized under the policy it teaches (so only its shape, not its scale, matters). Measured:
gold gain after an early and a late budget; RV and on-policy accuracy under the policy (m sampled responses per
prompt); off-policy accuracy on NEUTRAL pairs (two responses uniform over the candidates, ordered by r*), as the paper
measures it on a fixed dataset not drawn from the policy.

What the paper says and what is tested (ρ = Spearman across RMs, one number per seed, verdicts.check_sign):

* early (Sec. 3 theory: the rate of the gold increase is governed by RV under the policy; Sec. 5: RV correlates
  with the early reward increase more strongly than on- or off-policy accuracy) — per seed, ρ(gain, RV) −
  max(ρ(gain, on-acc), ρ(gain, off-acc)) > 0 across an *independent family* (:mod:`.razin_family`: RMs whose
  accuracy and RV are set by separate knobs), after its early budget. The zoo's same gap (mean over the 8 early
  settings policy × method × lr) is reported, not tested: across trained proxies RV and accuracy co-vary, so the
  two correlations measure the same variation and their difference is noise (14/20 seeds, CI straddling 0);
* late (accuracy decides which policy the optimization ends at — a perfectly accurate RM's maximizer is r*'s —
  so accuracy, not RV, governs the reward reached after long training) — the same number at the late budget < 0;
* a perfectly accurate low-RV RM gains less early than the highest-RV trained proxy;
* policy dependence: the threshold RM gains less than r* from π₀ and more than r* from B (mean over the early
  method × lr settings of each policy);
* RV is policy-specific: on the focused family, ρ(gain, RV under the trained policy) − ρ(gain, RV under the
  other policy) > 0 (mean over the 8 early settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.evaluate.metrics import pearson, spearman
from rewardlab.lab.common import Advance, ExperimentResult, _noop, teacher_metrics
from rewardlab.lab.experiments.razin_family import FamilyConfig, early_claim, run_family
from rewardlab.lab.proxies import ProxySpec, train_proxy
from rewardlab.lab.tabular_rl import optimize
from rewardlab.lab.verdicts import Claim, all_of, check_sign, fmt, mean
from rewardlab.lab.world import (
    TabularWorld,
    WorldConfig,
    band_reward,
    low_variance_reward,
    make_world,
    neutral_pairs,
    standardize,
    threshold_reward,
)

POLICIES = ("pi0", "B")
METHODS = ("rloo", "exact")
METRICS = ("rv", "on_acc", "off_acc")
CONSTRUCTED = ("gold r*", "perfect, low-RV", "perfect, threshold")
PAPER = "Razin et al. 2025"


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
    eval_pairs: int = 2000       # off-policy accuracy: neutral pairs (responses uniform over candidates), by r*
    lowvar_factor: float = 0.1
    lowvar_fraction: float = 0.9
    threshold_slope: float = 2.5  # threshold RM: slope A above t = E_B z − width·Std_B z
    threshold_width: float = 0.0  # t = E_B z: steep only above the mean level of B's answers (robust over seeds)
    band_slopes: tuple[float, ...] = (1.0, 4.0)                   # focused family: steepness A of the bands
    band_mixes: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)   # weight w of the π₀-focused band (1 − w: B's)
    proxy_steps: int = 300
    independent: FamilyConfig = field(default_factory=FamilyConfig)  # the independent family (razin-rv-early)

    def units(self, n_seeds: int) -> int:
        return n_seeds * (len(self.proxy_specs(0)) + len(POLICIES) * len(METHODS) * len(self.lrs) + 1)

    def proxy_specs(self, seed: int) -> list[ProxySpec]:
        specs = []
        for h in self.hidden_sizes:
            for n in self.n_pairs:
                for f in self.on_policy_fractions:
                    name = f"{'mlp' if h else 'linear'}·{n}p·{int(round(100 * f))}%on"
                    specs.append(ProxySpec(name, n, f, h, seed=seed * 1000 + len(specs)))
        return specs

    def family(self) -> list[tuple[str, float, float]]:
        """The focused family: (name, w, A) for w·band(π₀) + (1 − w)·band(B) at steepness A."""
        return [(f"band w={w:g} A={a:g}", w, a) for a in self.band_slopes for w in self.band_mixes]

    def settings(self, budget: int) -> list[str]:
        """The keys 'policy|method|lr|budget' of one budget: every policy × method × lr."""
        return [f"{p}|{m}|{lr:g}|{budget}" for p in POLICIES for m in METHODS for lr in self.lrs]


def constructed_rewards(cfg: RazinConfig, world: TabularWorld, seed: int) -> tuple[list[str], list[torch.Tensor]]:
    """r*, the low-RV RM (shrunk under π₀), the threshold RM (focused on B), then the focused family."""
    pi0, b = world.policies["pi0"], world.policies["B"]
    tables = [world.gold, low_variance_reward(world, pi0, cfg.lowvar_factor, cfg.lowvar_fraction, seed),
              threshold_reward(world, b, cfg.threshold_slope, width=cfg.threshold_width)]
    names = list(CONSTRUCTED)
    for name, w, a in cfg.family():
        names.append(name)
        tables.append(w * band_reward(world, pi0, a) + (1 - w) * band_reward(world, b, a))
    return names, tables


def run_seed(cfg: RazinConfig, seed: int, advance: Advance = _noop) -> dict:
    """All measurements of one seed (one world): names, metrics per policy, gains per setting."""
    world = make_world(cfg.world, seed)
    specs = cfg.proxy_specs(seed)
    tables = []
    for spec in specs:
        tables.append(train_proxy(world, spec, steps=cfg.proxy_steps))
        advance(1)
    c_names, c_tables = constructed_rewards(cfg, world, seed)
    tables = torch.stack(tables + c_tables)
    names = [s.name for s in specs] + c_names
    g = torch.Generator().manual_seed(seed + 12345)
    eval_pairs = neutral_pairs(world, cfg.eval_pairs, g)
    out: dict = {"seed": seed, "names": names, "n_trained": len(specs),
                 "family": [names.index(n) for n, _, _ in cfg.family()],
                 "metrics": {}, "gain": {}, "curves": {}, "per_prompt_gain": {}}
    steps = sorted({0, cfg.early, cfg.late} | {int(x) for x in np.linspace(0, cfg.late, 11)})
    for pol in POLICIES:
        ref = world.policies[pol]
        out["metrics"][pol] = teacher_metrics(world, tables, ref, eval_pairs, cfg.m_samples, g)
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
                    if f"{key}|{budget}" == primary_key(cfg):         # the per-prompt figure's setting only
                        out["per_prompt_gain"][f"{key}|{budget}"] = per_prompt.numpy()
                advance(1)
    out["independent"] = run_family(cfg.independent, cfg.world, seed)
    advance(1)
    return out


def primary_key(cfg: RazinConfig) -> str:
    return f"pi0|rloo|{cfg.lrs[0]:g}|{cfg.early}"


def run(cfg: RazinConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


# ------------------------------------------------------------------------------------------------ claims
def _rho(o: dict, key: str, metric_pol: str, m: str, idx) -> float:
    """Spearman ρ(gain at ``key``, metric ``m`` measured under ``metric_pol``) across the RMs ``idx``."""
    return spearman(np.asarray(o["metrics"][metric_pol][m])[idx], np.asarray(o["gain"][key])[idx])


def correlation_rows(cfg: RazinConfig, per_seed: list[dict]) -> list[dict]:
    """Every (policy, method, lr, budget): per seed, Pearson/Spearman across the trained proxies of gain vs each
    metric under that policy, and the tested gap ρ(RV) − max(ρ(on-acc), ρ(off-acc))."""
    rows = []
    for budget in (cfg.early, cfg.late):
        for key in cfg.settings(budget):
            pol, method, lr, _ = key.split("|")
            row: dict = {"policy": pol, "method": method, "lr": float(lr), "steps": budget}
            for m in METRICS:
                idx = [np.arange(o["n_trained"]) for o in per_seed]
                row[f"spearman_{m}"] = [_rho(o, key, pol, m, i) for o, i in zip(per_seed, idx)]
                row[f"pearson_{m}"] = [pearson(np.asarray(o["metrics"][pol][m])[i], np.asarray(o["gain"][key])[i])
                                       for o, i in zip(per_seed, idx)]
            row["gap"] = [rv - max(on, off) for rv, on, off in
                          zip(row["spearman_rv"], row["spearman_on_acc"], row["spearman_off_acc"])]
            rows.append(row)
    return rows


def _seeds(per_seed: list[dict], values: list[float], pred) -> str:
    """The seeds (as run) whose value satisfies ``pred``."""
    return ", ".join(str(o.get("seed", s)) for s, (o, v) in enumerate(zip(per_seed, values)) if pred(v)) or "none"


def _budget_claims(cfg: RazinConfig, per_seed: list[dict], rows: list[dict]) -> tuple[Claim, Claim]:
    n_trained = per_seed[0]["n_trained"]
    out = []
    for budget, sign in ((cfg.early, 1), (cfg.late, -1)):
        rb = [r for r in rows if r["steps"] == budget]
        gap = [float(np.nanmean([r["gap"][s] for r in rb])) for s in range(len(per_seed))]
        means = {m: [float(np.nanmean([r[f"spearman_{m}"][s] for r in rb])) for s in range(len(per_seed))]
                 for m in METRICS}
        wins = sum(mean(r["gap"]) > 0 for r in rb)
        # Why RV wins or loses, from the zoo: how widely RV spreads across the trained proxies (coefficient of
        # variation under π₀ and B) and how RV and on-policy accuracy co-rank them.
        cv = [float(np.mean([np.std(o["metrics"][p]["rv"][:n_trained]) / np.mean(o["metrics"][p]["rv"][:n_trained])
                             for p in POLICIES])) for o in per_seed]
        co = [float(np.mean([spearman(o["metrics"][p]["rv"][:n_trained], o["metrics"][p]["on_acc"][:n_trained])
                             for p in POLICIES])) for o in per_seed]
        lose = [s for s, v in enumerate(gap) if v * sign <= 0]
        keep = [s for s in range(len(gap)) if s not in lose]
        seeds = [o.get("seed", s) for s, o in enumerate(per_seed)]

        def sub(xs: list[float], ss: list[int]) -> float:
            return mean([xs[s] for s in ss]) if ss else float("nan")

        diag = (f"at {budget} steps ρ(RV) − max ρ(acc) per seed: {', '.join(f'{v:+.2f}' for v in gap)}; RV is the "
                f"better predictor in {wins}/{len(rb)} settings (mean over seeds); mean ρ(RV) {mean(means['rv']):.2f}, "
                f"ρ(on-acc) {mean(means['on_acc']):.2f}, ρ(off-acc) {mean(means['off_acc']):.2f}. Seeds against the "
                f"claim: {', '.join(str(seeds[s]) for s in lose) or 'none'}")
        if lose and keep:
            diag += (f" — there the proxies' RV spreads {'less' if sub(cv, lose) < sub(cv, keep) else 'more'} "
                     f"(coefficient of variation {sub(cv, lose):.2f} vs {sub(cv, keep):.2f}) and ρ(RV, on-acc) across "
                     f"the proxies is {sub(co, lose):+.2f} vs {sub(co, keep):+.2f} in the other seeds")
        setting = (f"mean over the {len(rb)} settings policy {{π₀, B}} × {{RLOO k={cfg.k}, exact PG}} × lr "
                   f"{{{', '.join(f'{lr:g}' for lr in cfg.lrs)}}}, β={cfg.beta}, after {budget} steps, of ρ(gain, RV) "
                   f"− max(ρ(gain, on-acc), ρ(gain, off-acc)); ρ = Spearman across the {n_trained} trained proxies, "
                   f"metrics under the trained policy, off-policy accuracy on neutral pairs")
        measured = (f"ρ(RV)={fmt(means['rv'])}, ρ(on-acc)={fmt(means['on_acc'])}, ρ(off-acc)={fmt(means['off_acc'])}"
                    f"; RV better in {wins}/{len(rb)} settings")
        if sign > 0:
            zoo = {"budget": budget, "gap": gap, "rv": means["rv"], "on_acc": means["on_acc"],
                   "diagnosis": "Trained zoo: " + diag}
            out.append(early_claim(cfg.independent, [o["independent"] for o in per_seed], zoo, PAPER))
        else:
            out.append(Claim(
                "razin-acc-late", "razin", PAPER,
                "Late in training, accuracy predicts the gold gain better than reward variance (accuracy decides "
                "where optimization ends, RV how fast it gets there)",
                "corr(late gain, accuracy) > corr(late gain, RV)",
                f"per seed, {setting}: < 0", measured, check_sign(gap, -1),
                {"gap": gap, **{f"rho_{m}": v for m, v in means.items()}, "settings_rv_better": wins}, diag))
    return out[0], out[1]


def summarize(cfg: RazinConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    names, n_seeds = per_seed[0]["names"], len(per_seed)
    i_gold, i_low, i_th = (names.index(c) for c in CONSTRUCTED)
    fam = per_seed[0]["family"]
    # The "less accurate, higher-variance" RM: per seed, the trained proxy with the highest RV under π₀.
    i_refs = [int(np.argmax(o["metrics"]["pi0"]["rv"][:o["n_trained"]])) for o in per_seed]
    primary = primary_key(cfg)
    rows = correlation_rows(cfg, per_seed)
    c_early, c_late = _budget_claims(cfg, per_seed, rows)

    def gain(key: str, i: int | list[int]) -> list[float]:
        i_s = i if isinstance(i, list) else [i] * n_seeds
        return [float(o["gain"][key][ii]) for o, ii in zip(per_seed, i_s)]

    def metric(pol: str, m: str, i: int | list[int]) -> list[float]:
        i_s = i if isinstance(i, list) else [i] * n_seeds
        return [float(o["metrics"][pol][m][ii]) for o, ii in zip(per_seed, i_s)]

    def diff(key: str, a: int | list[int], b: int) -> list[float]:
        return [x - y for x, y in zip(gain(key, a), gain(key, b))]

    # Low-variance RM (shrunk under π₀) vs the highest-RV proxy: mean over the π₀ early method × lr settings.
    pi0_early = [k for k in cfg.settings(cfg.early) if k.startswith("pi0|")]
    d_low = [float(np.mean(v)) for v in zip(*(diff(k, i_refs, i_low) for k in pi0_early))]
    budgets = {f"lr={lr:g}, {b} steps": diff(f"pi0|rloo|{lr:g}|{b}", i_refs, i_low)
               for lr in cfg.lrs for b in (cfg.early, cfg.late)}
    rv_ref, rv_low = metric("pi0", "rv", i_refs), metric("pi0", "rv", i_low)
    c_low = Claim(
        "razin-lowvar-slow", "razin", PAPER,
        "A perfectly accurate RM with low reward variance raises the gold reward more slowly than a less accurate "
        "RM with higher variance",
        "gain(less accurate, higher RV) > gain(perfectly accurate, low RV) early in training",
        f"per seed, mean over {{RLOO k={cfg.k}, exact}} × lr {{{', '.join(f'{lr:g}' for lr in cfg.lrs)}}} from π₀ "
        f"at {cfg.early} steps of gain(highest-RV trained proxy) − gain(perfect, low-RV): > 0",
        f"proxy ({', '.join(names[i] for i in i_refs)}) vs perfect low-RV: "
        f"on-acc {fmt(metric('pi0', 'on_acc', i_refs))} vs {fmt(metric('pi0', 'on_acc', i_low))}; "
        f"RV {fmt(rv_ref)} vs {fmt(rv_low)}; gain difference (RLOO) "
        + "; ".join(f"{k}: {fmt(v)}" for k, v in budgets.items()),
        check_sign(d_low), {"difference": d_low, "difference_by_budget": budgets, "proxy_index": i_refs},
        f"RV under π₀: proxy {mean(rv_ref):.3f} vs low-RV RM {mean(rv_low):.3f} (ratio "
        f"{mean(rv_ref) / max(mean(rv_low), 1e-12):.1f}); gain difference per seed "
        f"{', '.join(f'{v:+.3f}' for v in d_low)}; seeds against the claim: "
        f"{_seeds(per_seed, d_low, lambda v: v <= 0)}")

    # Policy dependence: threshold RM (focused on B) vs r*, mean over the early method × lr settings per policy.
    th = {pol: [float(np.mean([o["gain"][k][i_th] - o["gain"][k][i_gold] for k in cfg.settings(cfg.early)
                               if k.startswith(pol + "|")])) for o in per_seed] for pol in POLICIES}
    rv_ratio = {pol: [a / b for a, b in zip(metric(pol, "rv", i_th), metric(pol, "rv", i_gold))] for pol in POLICIES}
    c_dep = Claim(
        "razin-policy-dependent", "razin", PAPER,
        "The same (perfectly accurate) RM can be a worse teacher than r* for one initial policy and a better one "
        "for another, because RV depends on the policy",
        "teacher ranking flips between initial policies",
        f"per seed, mean over {{RLOO, exact}} × lr {{{', '.join(f'{lr:g}' for lr in cfg.lrs)}}} at {cfg.early} steps "
        f"of gain(threshold RM focused on B) − gain(r*): < 0 from π₀ AND > 0 from B",
        f"RV(threshold) under π₀ {fmt(metric('pi0', 'rv', i_th))}, under B {fmt(metric('B', 'rv', i_th))}; "
        f"RV(r*) under π₀ {fmt(metric('pi0', 'rv', i_gold))}, under B {fmt(metric('B', 'rv', i_gold))}; "
        f"gain difference from π₀ {fmt(th['pi0'])}, from B {fmt(th['B'])}",
        all_of(check_sign(th["pi0"], -1, "from π₀"), check_sign(th["B"], 1, "from B")),
        {**th, "rv_ratio": rv_ratio},
        f"RV(threshold)/RV(r*) under π₀ {mean(rv_ratio['pi0']):.2f}, under B {mean(rv_ratio['B']):.2f}; gain "
        f"difference per seed from π₀ {', '.join(f'{v:+.3f}' for v in th['pi0'])} (against: seeds "
        f"{_seeds(per_seed, th['pi0'], lambda v: v >= 0)}), from B {', '.join(f'{v:+.3f}' for v in th['B'])} "
        f"(against: seeds "
        f"{_seeds(per_seed, th['B'], lambda v: v <= 0)}); smallest |difference| "
        f"{min(abs(v) for v in th['pi0'] + th['B']):.3f}")

    # RV is policy-specific: on the focused family, RV under the trained policy vs under the other one.
    spec = {"own": [], "other": [], "gap": [], "rv_rank_corr": [], "proxy_gap": [], "proxy_rv_rank_corr": []}
    for o in per_seed:
        n = o["n_trained"]
        own, other, p_gap = [], [], []
        for key in cfg.settings(cfg.early):
            pol = key.split("|")[0]
            alt = POLICIES[1 - POLICIES.index(pol)]
            own.append(_rho(o, key, pol, "rv", fam))
            other.append(_rho(o, key, alt, "rv", fam))
            p_gap.append(_rho(o, key, pol, "rv", slice(0, n)) - _rho(o, key, alt, "rv", slice(0, n)))
        spec["own"].append(float(np.nanmean(own)))
        spec["other"].append(float(np.nanmean(other)))
        spec["gap"].append(float(np.nanmean(np.subtract(own, other))))
        spec["proxy_gap"].append(float(np.nanmean(p_gap)))
        spec["rv_rank_corr"].append(spearman(np.asarray(o["metrics"]["pi0"]["rv"])[fam],
                                             np.asarray(o["metrics"]["B"]["rv"])[fam]))
        spec["proxy_rv_rank_corr"].append(spearman(o["metrics"]["pi0"]["rv"][:n], o["metrics"]["B"]["rv"][:n]))
    c_spec = Claim(
        "razin-rv-policy-specific", "razin", PAPER,
        "RMs cannot be judged independently of the policy: RV measured under the policy being trained predicts "
        "its gain better than RV measured under another policy",
        "ρ(gain, RV under own policy) > ρ(gain, RV under other policy)",
        f"per seed, mean over the {len(cfg.settings(cfg.early))} settings at {cfg.early} steps of ρ(gain, RV under the "
        f"trained policy) − ρ(gain, RV under the other policy), Spearman across the {len(fam)} perfectly accurate "
        f"focused RMs w·band(π₀) + (1 − w)·band(B): > 0",
        f"ρ(own)={fmt(spec['own'])}, ρ(other)={fmt(spec['other'])}; RV rankings under π₀ vs B correlate "
        f"{fmt(spec['rv_rank_corr'])} on the family, {fmt(spec['proxy_rv_rank_corr'])} on the trained proxies "
        f"(there ρ(own) − ρ(other) = {fmt(spec['proxy_gap'])}, not tested)",
        check_sign(spec["gap"]), spec,
        f"the family's RV rankings under π₀ and under B correlate {mean(spec['rv_rank_corr']):+.2f} (mean over "
        f"seeds; the trained proxies' {mean(spec['proxy_rv_rank_corr']):+.2f}), so RV under either policy ranks "
        f"them {'alike' if mean(spec['rv_rank_corr']) > 0.8 else 'differently'}; ρ(own) − ρ(other) per seed "
        f"{', '.join(f'{v:+.2f}' for v in spec['gap'])}")

    claims = [c_early, c_late, c_low, c_dep, c_spec]
    lines = [f"[razin] {c.id}: {c.measured} -> {c.verdict}" for c in claims]
    data = {"names": names, "n_trained": per_seed[0]["n_trained"], "family": fam, "reference_proxy": i_refs,
            "primary": primary, "early": cfg.early, "late": cfg.late, "lrs": list(cfg.lrs), "corr_rows": rows,
            "per_seed": per_seed, "lowvar_fraction": cfg.lowvar_fraction, "threshold_gap": th,
            "specific": spec, "family_budgets": [cfg.independent.early, cfg.independent.late]}
    return ExperimentResult("razin", "Razin et al. 2025 — what makes a reward model a good teacher", claims, data,
                            lines)
