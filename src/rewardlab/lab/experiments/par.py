"""Experiment 4 — PAR (Fu et al. 2025, "Reward Shaping to Mitigate Reward Hacking in RLHF").

A hackable proxy is optimized by RL (exact policy gradient, shared-feature policy, KL penalty β) for long enough
to reach high KL, three ways: raw (standardized under π₀); PAR-shaped as the paper defines it with
:func:`rewardlab.rewards.shaping.par_shape`, r'(x, y) = (1/M) Σ_m σ(r(x, y) − r(x, y_ref^m)) ∈ (0, 1), with M
reference answers per prompt sampled once from π₀; and a control: the raw reward rescaled to PAR's π₀ standard
deviation. PAR is bounded *and* smaller in scale (like a larger β); the control separates the two.

The proxy is a *linear* BT reward model on 100 π₀ pairs: π₀ rarely writes long answers and within its range longer
is better, so a linear proxy extrapolates "longer is better" to the very long answers, whose gold is far below π₀'s
(the gold length term falls beyond ℓ*). PAR's claim presumes that the raw proxy is hacked: a seed's raw run
"collapses" when it ends with less gold than π₀. With the one-hidden-layer proxy of the other experiments raw
collapsed in only 6 of seeds 0–9 (its extrapolation to long answers varies), so the claim flipped between seed
sets; with the linear proxy it collapsed in 10/10. If raw does not collapse reliably the claim is inconclusive
(the setting cannot test it), not refuted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.proxies import ProxySpec, train_proxy
from rewardlab.lab.tabular_rl import optimize
from rewardlab.lab.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    Evidence,
    all_of,
    check_outcomes,
    check_sign,
    fmt,
)
from rewardlab.lab.world import WorldConfig, make_world, moments, sample_responses, standardize
from rewardlab.rewards.shaping import par_shape

ARMS = ("raw", "raw at PAR's scale", "PAR")


@dataclass(frozen=True)
class PARConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    n_pairs: int = 100
    hidden: int = 0           # linear proxy: reliably hackable (see the module docstring)
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
            "d": traj.stacked("kl").mean(-1).clamp_min(0).sqrt().numpy(), "names": list(ARMS),
            "reward": traj.stacked("proxy").mean(-1).numpy()}          # E_π[optimized reward] per arm [T, arms]


def run(cfg: PARConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def given(precondition: Evidence, effect: Evidence) -> Evidence:
    """An effect that presumes a precondition: reproduced when both are; not reproduced when the effect is
    contradicted; otherwise inconclusive (without the precondition the run cannot test the effect)."""
    both = all_of(precondition, effect)
    verdict = (NOT_REPRODUCED if effect.verdict == NOT_REPRODUCED else
               REPRODUCED if both.verdict == REPRODUCED else INCONCLUSIVE)
    return Evidence(verdict, both.summary, both.stats, "", both.failing)


def summarize(cfg: PARConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    final = {name: [float(o["gold"][-1][j]) for o in per_seed] for j, name in enumerate(ARMS)}
    kl_end = {name: [float(o["d"][-1][j] ** 2) for o in per_seed] for j, name in enumerate(ARMS)}
    peak = {name: [float(np.max(o["gold"][:, j])) for o in per_seed] for j, name in enumerate(ARMS)}
    collapsed = {name: [f < 0 for f in final[name]] for name in ARMS}  # ends with less gold than π₀
    fall = {name: [f - p for f, p in zip(final[name], peak[name])] for name in ARMS}   # final − peak gold
    diff = [p - r for p, r in zip(final["PAR"], final["raw"])]
    diff_scaled = [p - r for p, r in zip(final["PAR"], final[ARMS[1]])]
    n = len(per_seed)
    k_raw, k_par = sum(collapsed["raw"]), sum(collapsed["PAR"])
    claim = Claim(
        "par-high-kl", "par", "Fu et al. 2025 (PAR)",
        "Shaping the reward with PAR (σ of the margin over reference answers) mitigates the gold collapse of long "
        "RL against a hackable proxy: PAR ends with more gold than the raw proxy, whose gold collapses",
        "PAR keeps gold high where the raw proxy's gold collapses",
        f"per seed after {cfg.rl_steps} steps (β {cfg.beta:g}, lr {cfg.rl_lr:g}): the raw run collapses (ends with "
        "less gold than π₀) — the premise — and gold(PAR) − gold(raw) > 0; both consistently over seeds",
        f"raw collapsed in {k_raw}/{n} seeds, PAR in {k_par}/{n}; final gold gain raw {fmt(final['raw'])}, PAR "
        f"{fmt(final['PAR'])} (difference {fmt(diff)}); peak gold raw {fmt(peak['raw'])}, PAR {fmt(peak['PAR'])}; "
        f"final KL raw {fmt(kl_end['raw'])}, PAR {fmt(kl_end['PAR'])}",
        given(check_outcomes(collapsed["raw"], "raw collapses"), check_sign(diff, what="PAR − raw")),
        {"final": final, "kl_end": kl_end, "peak": peak, "collapsed": collapsed},
        f"raw collapsed in {k_raw}/{n} seeds (final − peak gold {fmt(fall['raw'])}); PAR's final − peak gold "
        f"{fmt(fall['PAR'])}, PAR collapsed in {k_par}/{n}; PAR − raw ≤ 0 in {sum(d <= 0 for d in diff)}/{n} seeds"
        + (" — where raw does not collapse it ends above PAR, which stops at a lower KL" if k_raw < n else ""))
    par_start, par_reward = ([float(o["reward"][t][ARMS.index("PAR")]) if "reward" in o else float("nan")
                              for o in per_seed] for t in (0, -1))
    holds = Claim(
        "par-holds", "par", "Fu et al. 2025 (PAR)",
        "Under PAR the gold reward does not collapse: the PAR run ends with at least π₀'s gold",
        "PAR's gold stays high through long training",
        f"per seed: final gold(PAR) − gold(π₀) ≥ 0 after {cfg.rl_steps} steps; sign test over seeds",
        f"PAR ends below π₀ in {k_par}/{n} seeds; final gold gain PAR {fmt(final['PAR'])}, peak {fmt(peak['PAR'])}",
        check_outcomes([not c for c in collapsed["PAR"]]), {"final": final["PAR"], "collapsed": collapsed["PAR"]},
        f"PAR ended below π₀ in {k_par}/{n} seeds (final gold "
        + ", ".join(f"{f:+.2f}" for f, c in zip(final["PAR"], collapsed["PAR"]) if c)
        + f"), at final KL {fmt([k for k, c in zip(kl_end['PAR'], collapsed['PAR']) if c])}; in those seeds the PAR "
        f"reward rose from {fmt([r for r, c in zip(par_start, collapsed['PAR']) if c])} under π₀ to "
        f"{fmt([r for r, c in zip(par_reward, collapsed['PAR']) if c])} (its bound is 1) while gold fell")
    k_scaled = sum(collapsed[ARMS[1]])
    shape = Claim(
        "par-shape", "par", "Fu et al. 2025 (PAR)",
        "PAR's benefit is more than a smaller reward scale: it also beats the raw reward rescaled to PAR's π₀ std",
        "(not tested in the paper — a control added here)",
        "gold(PAR) − gold(raw at PAR's scale) at the end consistently > 0",
        f"final gold gain raw at PAR's scale {fmt(final[ARMS[1]])} vs PAR {fmt(final['PAR'])} (difference "
        f"{fmt(diff_scaled)}); final KL {fmt(kl_end[ARMS[1]])} vs {fmt(kl_end['PAR'])}",
        check_sign(diff_scaled), {"difference": diff_scaled},
        f"the rescaled raw reward collapsed in {k_scaled}/{n} seeds (final − peak gold {fmt(fall[ARMS[1]])}); PAR − "
        f"rescaled ≤ 0 in {sum(d <= 0 for d in diff_scaled)}/{n} seeds; final KL rescaled {fmt(kl_end[ARMS[1]])} vs "
        f"PAR {fmt(kl_end['PAR'])}")
    lines = [f"[par] {c.id}: {c.measured} -> {c.verdict}" for c in (claim, holds, shape)]
    return ExperimentResult("par", "PAR — preference-as-reward shaping at high KL", [claim, holds, shape],
                            {"per_seed": per_seed, "references": cfg.references}, lines)
