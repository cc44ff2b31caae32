"""The transformer level: the same findings with real generation, a tiny GPT-2 π₀, BT-trained RMs.

Per seed (= a new text world and π₀, see :mod:`rewardlab.lab.lm_world`):
* sample N answers per prompt from π₀ (:func:`rewardlab.models.generation.sample`), label pairs of them with r*, and
  train proxies on several amounts with the BT trainer; measure their RV and on-policy accuracy under π₀
  (:mod:`rewardlab.evaluate.metrics`);
* Gao — best-of-n for every n ≤ N with the optimize stage's unbiased estimator and analytic KL bound
  (:func:`rewardlab.optimize.best_of_n.bon_curve`);
* Razin — RLOO (k = 2, β = 0.05; :func:`rewardlab.optimize.rloo.train_rloo`) with **plain SGD** (θ ← θ − lr·g, no
  clipping) against r*, the perfectly accurate low-RV RM (:func:`rewardlab.lab.lm_world.low_variance_reward`) and
  the least-data proxy, each standardized under π₀ (:class:`rewardlab.rewards.shaping.NormalizedReward`), gold
  tracked every ``eval_every`` steps. SGD, because Razin et al.'s mechanism is a small gradient: AdamW divides the
  step by the gradient's RMS and would give the low-RV RM full-size steps. The *early budget* is the first
  evaluation (``eval_every`` steps); its KL(π‖π₀) is measured and reported, and a budget past ``max_early_kl``
  nats is named in the diagnosis.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.evaluate.metrics import on_policy_accuracy, reward_variance, spearman
from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.lm_world import LMWorld, LMWorldConfig, low_variance_reward, pretrained_policy, trained_proxy
from rewardlab.lab.verdicts import Claim, check_outcomes, check_sign, fmt, mean, peaks_then_falls
from rewardlab.models.generation import sample
from rewardlab.optimize.best_of_n import bon_curve, default_ns
from rewardlab.optimize.rloo import RLOOArgs, train_rloo
from rewardlab.rewards.shaping import NormalizedReward

M_TEACHER = 16  # Razin et al. measure teacher metrics (RV, on-policy accuracy) on a handful of samples per prompt


@dataclass(frozen=True)
class TransformerConfig:
    world: LMWorldConfig = field(default_factory=LMWorldConfig)
    n_prompts: int = 32
    bon_samples: int = 128        # N answers per prompt for best-of-n
    n_pairs: tuple[int, ...] = (100, 300, 1000)
    proxy_steps_per_pair: float = 0.1  # BT optimizer steps (batch 32) per training pair, at least 30
    rloo_steps: int = 20
    rloo_lr: float = 3e-3
    rloo_optimizer: str = "sgd"   # sgd | adamw (see the module docstring)
    rloo_prompts_per_step: int = 16
    eval_every: int = 10          # the early budget is the first evaluation (chosen on seeds 200-209)
    max_early_kl: float = 1.0     # nats; an early budget beyond this is reported as not early
    lowvar_factor: float = 0.1
    lowvar_fraction: float = 0.9
    min_drop: float = 0.1

    def units(self, n_seeds: int) -> int:
        return n_seeds * (2 + len(self.n_pairs) + 3)


def run_seed(cfg: TransformerConfig, seed: int, advance: Advance = _noop) -> dict:
    world = LMWorld(cfg.world, seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the full preset is meant for a GPU
    policy, tok = pretrained_policy(world)
    policy = policy.to(device)
    advance(1)
    prompts = world.prompts(cfg.n_prompts)
    N, P, m = cfg.bon_samples, cfg.n_prompts, M_TEACHER
    ro = sample(policy, tok, prompts, N, cfg.world.max_response, seed=seed, batch_size=1024)
    gold = world.gold()
    with torch.no_grad():
        gold_s = gold.score(ro.prompts, ro.responses).view(P, N)
    groups = [ro.responses[i * N:(i + 1) * N] for i in range(P)]
    advance(1)
    proxies, metrics, bon = [], {}, {}
    ns = default_ns(N)
    for j, n in enumerate(cfg.n_pairs):
        pairs = world.label_pairs(prompts, groups, n, seed=seed * 100 + j)
        steps = max(30, int(cfg.proxy_steps_per_pair * n))
        proxy = trained_proxy(world, pairs, f"{n} pairs", steps, seed, device=device)
        with torch.no_grad():
            s = proxy.score(ro.prompts, ro.responses).float().cpu().view(P, N)
        metrics[proxy.name] = {"rv": reward_variance(s[:, :m]), "on_acc": on_policy_accuracy(s[:, :m], gold_s[:, :m])}
        bon[proxy.name] = bon_curve(s, gold_s, ns)
        proxies.append(proxy)
        advance(1)

    low = low_variance_reward(world, prompts, gold_s.mean(1).tolist(), cfg.lowvar_factor, cfg.lowvar_fraction, seed)
    ls = low.score(ro.prompts, ro.responses).view(P, N)
    metrics[low.name] = {"rv": reward_variance(ls[:, :m]), "on_acc": on_policy_accuracy(ls[:, :m], gold_s[:, :m])}
    metrics["gold r*"] = {"rv": reward_variance(gold_s[:, :m]), "on_acc": 1.0}
    rl = {}
    sgd = cfg.rloo_optimizer == "sgd"
    args = RLOOArgs(steps=cfg.rloo_steps, prompts_per_step=cfg.rloo_prompts_per_step, k=2, kl_coef=0.05,
                    lr=cfg.rloo_lr, optimizer=cfg.rloo_optimizer, max_grad_norm=math.inf if sgd else 1.0,
                    max_new_tokens=cfg.world.max_response, eval_every=cfg.eval_every, eval_prompts=P,
                    eval_samples=4, calibration_samples=8, batch_size=512, seed=seed)
    for name, reward in (("gold r*", gold), (low.name, low), (proxies[0].name, proxies[0])):
        # standardized under π₀ (global mean/std of its samples, set by the loop's calibrate()), like the tabular world
        normalized = NormalizedReward(reward, mode="fixed", clip=None)
        summary = train_rloo(copy.deepcopy(policy), tok, normalized, prompts, args, gold=gold, progress=False)
        ev = summary["evaluations"]
        rl[name] = {"steps": [e["step"] for e in ev], "gold": [e["gold_mean"] - ev[0]["gold_mean"] for e in ev],
                    "kl": [e["kl"] for e in ev]}
        advance(1)
    return {"metrics": metrics, "bon": bon, "rl": rl, "proxy_names": [p.name for p in proxies],
            "mean_length": float(np.mean([len(r) for r in ro.responses]))}


def run(cfg: TransformerConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def summarize(cfg: TransformerConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims, printed lines and figure data from the per-seed measurements (pure: no optimization)."""
    names = per_seed[0]["proxy_names"]
    low, smallest, gold = "perfect, low-RV", names[0], "gold r*"
    early = 1  # the first evaluation after step 0: the early budget
    step = per_seed[0]["rl"][low]["steps"][early]

    def met(name: str, key: str) -> list[float]:
        return [o["metrics"][name][key] for o in per_seed]

    def at(name: str, key: str, i: int) -> list[float]:
        return [o["rl"][name][key][i] for o in per_seed]

    d = [a - b for a, b in zip(at(smallest, "gold", early), at(low, "gold", early))]
    d_late = [a - b for a, b in zip(at(smallest, "gold", -1), at(low, "gold", -1))]
    kl = {n: at(n, "kl", early) for n in (smallest, low, gold)}
    opt = f"{cfg.rloo_optimizer.upper() if cfg.rloo_optimizer == 'sgd' else 'AdamW'} lr {cfg.rloo_lr:g}"
    c1 = Claim(
        "tf-razin-lowvar", "transformer", "Razin et al. 2025",
        "Tiny GPT-2 + RLOO: a perfectly accurate low-RV RM raises the gold reward more slowly than a less accurate "
        "BT-trained proxy", "gain(proxy) > gain(perfect, low RV) early in training",
        f"gold gain after {step} RLOO steps (k=2, β=0.05, {opt}): gain({smallest} proxy) − gain(perfect, low-RV) "
        "consistently > 0 over seeds",
        f"on-acc {fmt(met(smallest, 'on_acc'))} vs {fmt(met(low, 'on_acc'))}; RV {fmt(met(smallest, 'rv'))} vs "
        f"{fmt(met(low, 'rv'))}; KL(π‖π₀) after {step} steps {fmt(kl[smallest])} vs {fmt(kl[low])} nats; gain "
        f"difference after {step} steps {fmt(d)}, after {cfg.rloo_steps} steps {fmt(d_late)}",
        check_sign(d), {"early": d, "late": d_late, "early_step": step, "early_kl": kl},
        _razin_diagnosis(cfg, step, {
            "kl_proxy": kl[smallest], "kl_low": kl[low], "kl_gold": kl[gold], "rv_proxy": met(smallest, "rv"),
            "rv_low": met(low, "rv"), "acc_proxy": met(smallest, "on_acc"), "gain_proxy": at(smallest, "gold", early),
            "gain_low": at(low, "gold", early), "gain_gold": at(gold, "gold", early)}))

    final = {n: [o["bon"][n][-1]["gold"] for o in per_seed] for n in names}
    rho = [spearman(np.log(cfg.n_pairs), [o["bon"][n][-1]["gold"] for n in names]) for o in per_seed]
    acc = {n: met(n, "on_acc") for n in names}
    c2 = Claim(
        "tf-gao-data", "transformer", "Gao et al. 2022",
        "Tiny GPT-2 + best-of-n: proxies trained on more pairs give more gold at the largest n",
        "more RM data ⇒ less over-optimization", f"Spearman ρ(log #pairs, gold at n = {cfg.bon_samples}) "
        "consistently > 0 over seeds (unbiased BoN estimator, optimize stage)",
        f"ρ = {fmt(rho)}; gold at n={cfg.bon_samples} by #pairs: " + ", ".join(f"{n}: {fmt(v)}"
                                                                            for n, v in final.items()),
        check_sign(rho), {"rho": rho, "final": final}, _data_diagnosis(cfg, per_seed, names, acc))

    curves = [[r["gold"] for r in o["bon"][smallest]] for o in per_seed]
    shape = [peaks_then_falls(g, cfg.min_drop) for g in curves]
    c3 = Claim(
        "tf-gao-overopt", "transformer", "Gao et al. 2022",
        f"Tiny GPT-2 + best-of-n (n ≤ {cfg.bon_samples}): the least-data proxy's gold peaks and then falls",
        "gold rises, peaks, then falls with √KL",
        f"gold curve of the {smallest} proxy peaks before n = {cfg.bon_samples} and ends ≥ {cfg.min_drop:.0%} of its "
        "gain below the peak, consistently over seeds (sign test)",
        f"holds in {sum(shape)}/{len(shape)} seeds; gold at n=1 → peak → n={cfg.bon_samples}: " + "; ".join(
            f"{g[0]:.2f} → {max(g):.2f} → {g[-1]:.2f}" for g in curves),
        check_outcomes(shape), {"per_seed": shape},
        _overopt_diagnosis(cfg, per_seed[0]["bon"][smallest], curves, acc[smallest], smallest))
    lines = [f"[transformer] {c.id}: {c.measured} -> {c.verdict}" for c in (c1, c2, c3)]
    return ExperimentResult("transformer", "Transformer level — tiny GPT-2 policy, BT-trained reward models",
                            [c1, c2, c3], {"per_seed": per_seed, "n_pairs": list(cfg.n_pairs),
                                           "eval_every": cfg.eval_every, "early_step": step,
                                           "optimizer": opt}, lines)


def _razin_diagnosis(cfg: TransformerConfig, step: int, per_seed: dict[str, list[float]]) -> str:
    """Why tf-razin-lowvar can fail, from the numbers (means over seeds of ``per_seed``'s lists): a budget that is
    not early, no RV gap, no slow-down, a proxy whose errors cost more than its speed gains, or RL that does not
    move gold at all; then the facts behind them."""
    v = {k: mean(x) for k, x in per_seed.items()}
    issues = []
    if max(v["kl_proxy"], v["kl_low"]) > cfg.max_early_kl:
        issues.append(f"KL at the early budget is {max(v['kl_proxy'], v['kl_low']):.2f} nats (> {cfg.max_early_kl:g}):"
                      " the budget is not early")
    if v["rv_low"] >= v["rv_proxy"]:
        issues.append(f"the low-RV RM's RV ({v['rv_low']:.2f}) is not below the proxy's ({v['rv_proxy']:.2f})")
    if v["kl_low"] >= v["kl_proxy"]:
        issues.append(f"the low-RV RM moved the policy as far as the proxy (KL {v['kl_low']:.2f} vs "
                      f"{v['kl_proxy']:.2f} nats): its low RV did not slow RLOO down")
    elif v["gain_proxy"] <= v["gain_low"]:
        issues.append(f"the proxy moved the policy further (KL {v['kl_proxy']:.2f} vs {v['kl_low']:.2f} nats) but "
                      f"gained less gold: its errors (on-policy accuracy {v['acc_proxy']:.2f}) cost more than the "
                      "low-RV RM's slowness")
    if v["gain_gold"] <= 0:
        issues.append(f"r* itself gains {v['gain_gold']:+.2f} after {step} steps: RLOO does not raise gold yet")
    return "; ".join(issues + [
        f"after {step} steps KL is {v['kl_proxy']:.2f} (proxy), {v['kl_low']:.2f} (low-RV), {v['kl_gold']:.2f} (r*) "
        f"nats; RV {v['rv_proxy']:.2f} vs {v['rv_low']:.2f}; gold gain {v['gain_proxy']:+.2f} vs "
        f"{v['gain_low']:+.2f} (r*: {v['gain_gold']:+.2f})"])


def _data_diagnosis(cfg: TransformerConfig, per_seed: list[dict], names: list[str], acc: dict[str, list[float]]
                    ) -> str:
    """Whether more pairs gave more accurate proxies, and how the gold gap at n = N compares with its noise."""
    rho_acc = [spearman(np.log(cfg.n_pairs), [o["metrics"][n]["on_acc"] for n in names]) for o in per_seed]
    gap = [o["bon"][names[-1]][-1]["gold"] - o["bon"][names[0]][-1]["gold"] for o in per_seed]
    se = mean([o["bon"][n][-1]["gold_se"] for o in per_seed for n in (names[0], names[-1])])
    issues = ([f"more pairs do not give more accurate proxies (ρ(log #pairs, on-policy accuracy) = {fmt(rho_acc)})"]
              if mean(rho_acc) <= 0 else [])
    return "; ".join(issues + [
        "on-policy accuracy by #pairs: " + ", ".join(f"{n}: {fmt(v)}" for n, v in acc.items()),
        f"gold at n = {cfg.bon_samples}, most − least data: {fmt(gap)} (standard error over prompts ≈ {se:.2f})"])


def _overopt_diagnosis(cfg: TransformerConfig, rows: list[dict], curves: list[list[float]], acc: list[float],
                       name: str) -> str:
    """Where the least-data proxy's gold curves peak and how far they fall, and whether best-of-N got there."""
    ns = [r["n"] for r in rows]
    peaks = [ns[int(np.argmax(g))] for g in curves]
    drops = [(max(g) - g[-1]) / (max(g) - g[0]) if max(g) > g[0] else math.nan for g in curves]
    at_end = sum(p == ns[-1] for p in peaks)
    issues = ([f"the {name} proxy's gold is highest at the largest n = {ns[-1]} in {at_end}/{len(peaks)} seeds: "
               f"best-of-{ns[-1]} (KL ≤ {rows[-1]['kl']:.1f} nats) does not reach its over-optimization regime"]
              if 2 * at_end >= len(peaks) else [])
    return "; ".join(issues + [
        f"gold peaks at n = {', '.join(map(str, peaks))} (per seed) and ends "
        f"{', '.join('n/a' if math.isnan(x) else f'{x:.0%}' for x in drops)} of its gain below the peak (needs "
        f"≥ {cfg.min_drop:.0%}); the proxy's on-policy accuracy is {fmt(acc)}"])
