"""Experiment 2 — Gao, Schulman & Hilton 2022, "Scaling Laws for Reward Model Overoptimization".

Proxies trained on more or fewer π₀ preference pairs are optimized by best-of-n (exact, every n on a log grid)
and by RL (exact policy gradient, no KL penalty, as Gao et al.'s main RL runs; the policy has per-prompt logits
plus weights shared through the features, so like a language model it generalizes across answers). Proxy and gold
gains (in units of the π₀ standard deviation of each reward) are recorded against d = √KL(π‖π₀) (exact KL from
the tabular distributions; BoN's analytic log n − (n−1)/n is an upper bound on it), and Gao et al.'s functional
forms are fitted with :mod:`rewardlab.optimize.fits` (BoN: d(α − βd); RL: d(α − β log d)).

A fit counts as Gao's form only if it is sufficient (≥ fits.MIN_POINTS distinct d > 0), R² ≥ MIN_R2, α > 0, β > 0
and its peak (BoN d* = α/2β, RL d* = exp(α/β − 1)) agrees with the curve: for a curve that peaks inside the measured
range, d* lies in that range and within a factor PEAK_FACTOR of the observed argmax d; for a curve still rising at
its end (its peak lies beyond the reachable d, "censored"), d* ≥ d_end / PEAK_FACTOR.

The optimization cannot go past the proxy's top answer: in a world with C candidates, d ≤ d_lim =
√(mean_x −log π₀(argmax_y r(x, y))) for BoN. "More data → later peak" is therefore tested with censoring: a curve that
never turns has its peak beyond its last d (Gehan's comparison of right-censored values).

The world has 64 candidates per prompt (the other tabular experiments: 32), as the full preset: with 32, the
100-pair proxy's curve peaked at the reachable end (d ≈ 2, its top answer) without falling in 3/20 (BoN) and 5/20
(RL) of seeds 0–19; more candidates give the proxy's top answers a longer tail past the gold peak (chosen on seeds
0–19: 2/20 and 4/20 then; seeds 100–119 were the check).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from rewardlab.evaluate.metrics import spearman
from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.proxies import ProxySpec, train_proxy
from rewardlab.lab.tabular_rl import bon_curve, optimize
from rewardlab.lab.verdicts import Claim, all_of, check_outcomes, check_sign, fmt, mean, peaks_then_falls
from rewardlab.lab.world import WorldConfig, make_world, probs, standardize
from rewardlab.optimize.bon import bon_kl
from rewardlab.optimize.fits import MIN_POINTS, fit_bon, fit_rl

MIN_R2 = 0.9        # a fit must explain ≥ 90% of the gold variance along its curve
PEAK_FACTOR = 2.0   # fitted peak within ×/÷ 2 of the observed argmax d
FAILS = {"points": f"< {MIN_POINTS} distinct d > 0", "r2": f"R² < {MIN_R2:g}", "alpha": "α ≤ 0",
         "beta": "β ≤ 0", "peak": "fitted peak off"}
KINDS = (("bon", "best-of-n"), ("rl", "RL (policy gradient, no KL penalty)"))


@dataclass(frozen=True)
class GaoConfig:
    world: WorldConfig = field(default_factory=lambda: replace(WorldConfig(), n_candidates=64))
    n_pairs: tuple[int, ...] = (100, 300, 1000, 3000)
    hidden: int = 16
    bon_max_log2: int = 12       # n = 1, 2, 4, ..., 2^max
    rl_lr: float = 0.3
    rl_steps: int = 1000
    rl_records: int = 40         # log-spaced recorded steps
    proxy_steps: int = 300
    min_drop: float = 0.1        # a curve "peaks": final gold below the peak by ≥ this fraction of the peak gain

    def units(self, n_seeds: int) -> int:
        return n_seeds * (len(self.n_pairs) + 2)


def _curves(gold: torch.Tensor, proxy: torch.Tensor, kl: torch.Tensor) -> dict:
    """[T, R, P] -> per proxy r: d = √(mean KL), gold/proxy gains relative to the first point (prompt means)."""
    g, p, k = gold.mean(-1), proxy.mean(-1), kl.mean(-1).clamp_min(0)
    return {"d": k.sqrt().T.numpy(), "gold": (g - g[0]).T.numpy(), "proxy": (p - p[0]).T.numpy()}


def run_seed(cfg: GaoConfig, seed: int, advance: Advance = _noop) -> dict:
    world = make_world(cfg.world, seed)
    pi0 = world.policies["pi0"]
    tables = []
    for j, n in enumerate(cfg.n_pairs):
        tables.append(train_proxy(world, ProxySpec(f"{n} pairs", n, 1.0, cfg.hidden, seed * 1000 + j),
                                  steps=cfg.proxy_steps))
        advance(1)
    proxies, gold = standardize(torch.stack(tables), pi0), standardize(world.gold, pi0)
    ns = [2**i for i in range(cfg.bon_max_log2 + 1)]
    bon = bon_curve(pi0, proxies, gold, ns)
    advance(1)
    record = sorted({0} | {int(x) for x in np.unique(np.geomspace(1, cfg.rl_steps, cfg.rl_records).round())})
    traj = optimize(pi0, proxies, gold, beta=0.0, lr=cfg.rl_lr, steps=cfg.rl_steps, record=record,
                    features=world.features)
    advance(1)
    top = proxies.argmax(-1, keepdim=True)                                     # [R, P, 1]
    d_lim = (-probs(pi0).log().expand_as(proxies).gather(-1, top)).mean((-2, -1)).sqrt()
    out = {"bon": _curves(bon["gold"], bon["proxy"], bon["kl"]), "ns": ns,
           "rl": _curves(traj.stacked("gold"), traj.stacked("proxy"), traj.stacked("kl")), "rl_steps": record,
           "bon_d_analytic": [float(bon_kl(n)) ** 0.5 for n in ns], "bon_d_limit": d_lim.numpy(), "seed": seed}
    for kind, fit in (("bon", fit_bon), ("rl", fit_rl)):
        c = out[kind]
        out[f"{kind}_fits"] = [fit(c["d"][r], c["gold"][r]).as_dict() for r in range(len(cfg.n_pairs))]
    return out


def run(cfg: GaoConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


# ------------------------------------------------------------------------------------------- per-curve rules
def observed_peak(d, gold, min_drop: float) -> tuple[bool, float]:
    """(peaked, d at the gold argmax): peaked = the curve rises, turns and falls ≥ min_drop of its gain."""
    g = np.asarray(gold, dtype=np.float64)
    return peaks_then_falls(g, min_drop), float(np.asarray(d, dtype=np.float64)[int(g.argmax())])


def check_fit(fit: dict, d, gold, min_drop: float) -> dict:
    """Does a least-squares fit (``GaoFit.as_dict()``) show Gao's form on its curve? Returns the failed checks
    (keys of FAILS; empty = the form fits), the fitted and observed peak d, whether the curve peaked, the points."""
    d_arr = np.asarray(d, dtype=np.float64)
    peaked, d_obs = observed_peak(d_arr, gold, min_drop)
    d_fit = fit.get("d_peak")
    out = {"fails": [], "d_fit": d_fit, "d_obs": d_obs, "peaked": peaked, "points": fit.get("n_distinct")}
    if not fit.get("sufficient", True):  # fits.fit_gao: too few distinct d for a 2-parameter fit
        out["fails"] = ["points"]
        return out
    r2, alpha, beta = fit["r2"], fit["alpha"], fit["beta"]
    if not (r2 is not None and r2 >= MIN_R2):
        out["fails"].append("r2")
    if not alpha > 0:
        out["fails"].append("alpha")
    if not beta > 0:
        out["fails"].append("beta")
    elif d_fit is None or not np.isfinite(d_fit):
        out["fails"].append("peak")
    else:
        positive = d_arr[d_arr > 0]
        if peaked:
            ok = (positive.min() <= d_fit <= d_arr.max()) and d_obs / PEAK_FACTOR <= d_fit <= d_obs * PEAK_FACTOR
        else:  # still rising at its end: the true peak lies beyond the measured range
            ok = d_fit >= d_obs / PEAK_FACTOR
        if not ok:
            out["fails"].append("peak")
    return out


def later_peak_score(curves: list[tuple[bool, float, float]]) -> float:
    """Gehan's comparison of peak positions along increasing data, with right-censoring.

    ``curves`` = (peaked, d at the peak, d at the end) per data amount, in increasing data. For each pair j < k:
    +1 if k's peak is later than j's, −1 if earlier, 0 if the order is unknown; a curve that did not peak has its
    peak beyond its last d (so it is later than an observed peak at d ≤ that end, and unknown against another
    censored curve). Returns the mean over all pairs, in [−1, 1]."""
    total, pairs = 0, 0
    for j in range(len(curves)):
        for k in range(j + 1, len(curves)):
            (ej, tj, cj), (ek, tk, ck) = curves[j], curves[k]
            pairs += 1
            if ej and ek:
                total += int(np.sign(tk - tj))
            elif ej and not ek:
                total += int(ck >= tj)
            elif ek and not ej:
                total -= int(cj >= tk)
    return total / pairs if pairs else float("nan")


# ------------------------------------------------------------------------------------------------- claims
def summarize(cfg: GaoConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    claims = []
    checks = {kind: [[check_fit(o[f"{kind}_fits"][j], o[kind]["d"][j], o[kind]["gold"][j], cfg.min_drop)
                      for j in range(len(cfg.n_pairs))] for o in per_seed] for kind, _ in KINDS}
    for kind, label in KINDS:
        claims.append(_overopt_claim(cfg, per_seed, kind, label))
        claims.append(_data_claim(cfg, per_seed, kind, label))
    claims.append(_later_claim(cfg, per_seed, checks))
    claims.append(_forms_claim(cfg, checks))
    lines = [f"[gao] {c.id}: {c.measured} -> {c.verdict}" for c in claims]
    data = {"n_pairs": list(cfg.n_pairs), "per_seed": per_seed, "fit_checks": checks,
            "fit_rule": {"min_r2": MIN_R2, "min_points": MIN_POINTS, "peak_factor": PEAK_FACTOR}}
    return ExperimentResult("gao", "Gao et al. 2022 — reward-model over-optimization", claims, data, lines)


def _overopt_claim(cfg: GaoConfig, per_seed: list[dict], kind: str, label: str) -> Claim:
    shape, drops, gains, d_peak = [], [], [], []
    for o in per_seed:
        g, p, d = o[kind]["gold"][0], o[kind]["proxy"][0], o[kind]["d"][0]
        i = int(np.argmax(g))
        shape.append(peaks_then_falls(g, cfg.min_drop) and p[-1] >= p[i])
        drops.append(float(g[i] - g[-1]))
        gains.append(float(g[i]))
        d_peak.append(float(d[i]))
    failed = [f"seed {o.get('seed', i)}: " + ("gold never rose (peak gain " f"{ga:+.2f})" if ga <= 0.05 else
              f"peak gain {ga:+.2f} at d = {dp:.2f}, end {dr:.2f} below it" + (" (proxy fell too)" if
              peaks_then_falls(o[kind]["gold"][0], cfg.min_drop) else ""))
              for i, (o, ok, dr, ga, dp) in enumerate(zip(per_seed, shape, drops, gains, d_peak)) if not ok]
    diagnosis = (f"the {cfg.n_pairs[0]}-pair proxy's curve lacks the shape in {len(failed)}/{len(shape)} seeds"
                 + (" — " + "; ".join(failed) if failed else ""))
    return Claim(
        f"gao-overopt-{kind}", "gao", "Gao et al. 2022",
        f"Under {label}, optimizing a proxy eventually lowers the gold reward while the proxy keeps rising",
        "gold rises, peaks, then falls with √KL; proxy increases",
        f"per seed, for the {cfg.n_pairs[0]}-pair proxy: gold peaks before the last point, ends ≥ {cfg.min_drop:.0%} "
        "of its gain below the peak, and proxy(last) ≥ proxy(at gold peak); sign test over seeds",
        f"holds in {sum(shape)}/{len(shape)} seeds; gold drop from peak to end {fmt(drops)}; peak gold gain "
        f"{fmt(gains)} at d = {fmt(d_peak)}",
        check_outcomes(shape), {"per_seed": shape, "drop": drops}, diagnosis)


def _data_claim(cfg: GaoConfig, per_seed: list[dict], kind: str, label: str) -> Claim:
    rho = [spearman(np.log(cfg.n_pairs), o[kind]["gold"].max(1)) for o in per_seed]
    peaks = {n: [float(o[kind]["gold"][j].max()) for o in per_seed] for j, n in enumerate(cfg.n_pairs)}
    best = [int(np.argmax([peaks[n][s] for n in cfg.n_pairs])) for s in range(len(per_seed))]
    diagnosis = (f"ρ ≤ 0 in {sum(r <= 0 for r in rho)}/{len(rho)} seeds; mean peak gold by #pairs "
                 + ", ".join(f"{n}: {mean(v):.2f}" for n, v in peaks.items())
                 + f"; the largest-data proxy has the highest peak in {sum(b == len(cfg.n_pairs) - 1 for b in best)}/"
                 f"{len(best)} seeds")
    return Claim(
        f"gao-data-{kind}", "gao", "Gao et al. 2022",
        f"Under {label}, proxies trained on more data reach a higher gold peak (less over-optimization)",
        "peak gold increases with RM data/size",
        "Spearman ρ(log #pairs, peak gold gain) across proxies, consistently > 0 over seeds",
        f"ρ = {fmt(rho)}; peak gold by #pairs: " + ", ".join(f"{n}: {fmt(v)}" for n, v in peaks.items()),
        check_sign(rho), {"rho": rho, "peaks": peaks}, diagnosis)


def _later_claim(cfg: GaoConfig, per_seed: list[dict], checks: dict) -> Claim:
    scores, parts, measured, diag = {}, [], [], []
    for kind, name in (("bon", "BoN"), ("rl", "RL")):
        scores[kind] = [later_peak_score([(c["peaked"], c["d_obs"], float(np.max(o[kind]["d"][j])))
                                          for j, c in enumerate(cs)]) for o, cs in zip(per_seed, checks[kind])]
        parts.append(check_sign(scores[kind], what=name))
        peaked = [sum(cs[j]["peaked"] for cs in checks[kind]) for j in range(len(cfg.n_pairs))]
        d_obs = [mean([cs[j]["d_obs"] for cs in checks[kind] if cs[j]["peaked"]]) for j in range(len(cfg.n_pairs))]
        measured.append(f"{name} score {fmt(scores[kind])}; curves that peak by #pairs "
                        + ", ".join(f"{n}: {k}/{len(per_seed)}" for n, k in zip(cfg.n_pairs, peaked)))
        d_end = mean([float(np.max(o[kind]["d"][j])) for o in per_seed for j in range(1, len(cfg.n_pairs))])
        diag.append(f"{name}: curves peak {sum(peaked)}/{len(per_seed) * len(cfg.n_pairs)} times ("
                    + ", ".join(f"{n}: {k}" for n, k in zip(cfg.n_pairs, peaked)) + "), observed peak d "
                    + ", ".join(f"{n}: {v:.2f}" for n, v in zip(cfg.n_pairs, d_obs) if v == v)
                    + f"; the larger-data curves end at d ≈ {d_end:.2f}")
    lim = mean([float(v) for o in per_seed for v in np.asarray(o["bon_d_limit"])[1:]])
    diag.append(f"the proxies' top answers cap BoN at d_lim ≈ {lim:.2f} (√ −log π₀ of the top answer), so a curve "
                "that has not turned by then never does in this world")
    return Claim(
        "gao-later-peak", "gao", "Gao et al. 2022",
        "Proxies trained on more data peak later (at larger d = √KL)",
        "the gold peak moves to larger KL with RM data/size",
        "per seed, Gehan's score over pairs of data amounts (+1 later peak with more data, −1 earlier; a curve that "
        "never turns peaks beyond its last d) for BoN and for RL, both consistently > 0 over seeds",
        "; ".join(measured), all_of(*parts), scores, "; ".join(diag))


def _forms_claim(cfg: GaoConfig, checks: dict) -> Claim:
    parts, measured, diag = [], [], []
    for kind, name in (("bon", "BoN"), ("rl", "RL")):
        per_seed = [all(not c["fails"] for c in cs) for cs in checks[kind]]
        parts.append(check_outcomes(per_seed, name))
        flat = [c for cs in checks[kind] for c in cs]
        ok = sum(not c["fails"] for c in flat)
        counts = {k: sum(k in c["fails"] for c in flat) for k in FAILS}
        peaked = [c for c in flat if c["peaked"]]
        measured.append(f"{name}: {ok}/{len(flat)} curves fit, all proxies fit in {sum(per_seed)}/{len(per_seed)} "
                        "seeds")
        why = ", ".join(f"{FAILS[k]} in {v}/{len(flat)}" for k, v in counts.items() if v) or "no check failed"
        ratio = [c["d_fit"] / c["d_obs"] for c in peaked if c["d_fit"] and c["d_obs"] > 0]
        diag.append(f"{name} fits: {why}; of the {len(peaked)} curves that peak, "
                    f"{sum(not c['fails'] for c in peaked)} fit"
                    + (f" (fitted/observed peak d median {np.median(ratio):.2f})" if ratio else ""))
    rule = (f"per seed, every proxy's curve fits: ≥ {MIN_POINTS} distinct d > 0, R² ≥ {MIN_R2:g}, α > 0, β > 0, and "
            f"the fitted peak within ×/÷{PEAK_FACTOR:g} of the observed argmax d (inside the measured range when the "
            f"curve peaks; ≥ d_end/{PEAK_FACTOR:g} when it still rises at its end); sign test over seeds, both forms")
    return Claim(
        "gao-forms", "gao", "Gao et al. 2022",
        "Gold vs d = √KL follows d(α − βd) for best-of-n and d(α − β log d) for RL",
        "the functional forms fit the gold curves, with α, β > 0 and the peak where gold turns",
        rule, "; ".join(measured), all_of(*parts), {}, "; ".join(diag))
