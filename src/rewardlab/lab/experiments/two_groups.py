"""Experiment — two annotator groups whose gold rewards conflict (MiCRo, Shen et al. 2025; MaxMin-RLHF,
Chakraborty et al. 2024).

World: the tabular world's prompts and candidates (:mod:`rewardlab.lab.world`), and two groups of annotators with
their own gold rewards over the response features, r_g(x, y) = s · w_g·φ₁:(x, y), unit directions with
cos(w_A, w_B) = ``conflict`` < 0 (they disagree on most pairs). A share ``majority`` of the labels comes from group
A, and labels are flipped with the world's ``label_noise`` (``--label-noise``). Each label carries a context c
(the annotator says who they are; with probability 1 − ``context_signal`` the context is a random group's): the
router's input.

Rewards compared, all linear in the proxy inputs and trained on the same pooled labels:
* a single BT RM (:func:`rewardlab.lab.proxies.train_feature_rm`, the lab's proxy trainer);
* a MiCRo mixture of K BT heads with a linear router over c, trained with
  :func:`rewardlab.rewards.personalized.mixture_bt_loss` (annotator identities never used);
* the same mixture routed from a few (``few_shot``) labelled pairs of each group (MiCRo's routing from limited
  data, :func:`rewardlab.rewards.personalized.fit_group_weights`) — for when the context says nothing;
* per-group oracle RMs trained on one group's labels only (an upper bound).
Per-group accuracy on held-out pairs ordered by each group's r_g (:func:`rewardlab.evaluate.metrics.subset_accuracy`).

Then the policy: exact KL-regularized policy gradient from π₀ (:func:`rewardlab.lab.tabular_rl.exact_gradient`)
against (a) the single BT RM and (b) the MaxMin objective over the mixture's heads, max_π min_k E_π[r_k] (each head
standardized under π₀; the step follows the currently worst head, :func:`maxmin_weights`). Reported: each group's
gold gain (r_g standardized under π₀) and the worst group's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.evaluate.metrics import subset_accuracy
from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.proxies import train_feature_rm
from rewardlab.lab.tabular_rl import exact_gradient
from rewardlab.lab.verdicts import Claim, check_sign, fmt
from rewardlab.lab.world import (
    Pairs,
    WorldConfig,
    expectation,
    make_world,
    preference_prob,
    probs,
    standardize,
)
from rewardlab.train.losses import balance_penalty, maxmin_weights, mixture_bt_loss
from rewardlab.train.mixture import fit_group_weights

GROUPS = ("A", "B")


@dataclass(frozen=True)
class TwoGroupsConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    majority: float = 0.7          # share of labels from group A
    conflict: float = -0.6         # cos(w_A, w_B)
    gold_scale: float = 2.0        # s: label sharpness, P(a ≻ b) = σ(r_g(a) − r_g(b))
    context_signal: float = 0.9    # P(context = the annotator's own group)
    n_pairs: int = 2000
    eval_pairs: int = 2000
    k: int = 2
    few_shot: int = 20             # labelled pairs per group for routing from limited data
    train_steps: int = 400
    train_lr: float = 0.05
    balance: float = 0.1
    beta: float = 0.05
    rl_lr: float = 0.5
    rl_steps: int = 300

    def units(self, n_seeds: int) -> int:
        return n_seeds * 2


def group_directions(d: int, conflict: float, generator: torch.Generator) -> torch.Tensor:
    """Two unit vectors [2, d] with cosine ``conflict``: w_B = ρ·w_A + √(1−ρ²)·v, v ⟂ w_A."""
    u = torch.randn(d, generator=generator, dtype=torch.float64)
    u = u / u.norm()
    v = torch.randn(d, generator=generator, dtype=torch.float64)
    v = v - (v @ u) * u
    v = v / v.norm()
    return torch.stack([u, conflict * u + math.sqrt(1 - conflict**2) * v])


def sample_group_pairs(gold: torch.Tensor, logits: torch.Tensor, n: int, majority: float, signal: float,
                       generator: torch.Generator, gold_labels: bool = False, noise: float = 0.0):
    """n pairs from π (x uniform, a ≠ b), each labelled by a group (A w.p. ``majority``) with BT labels from that
    group's gold ``gold`` [2, P, C], flipped with probability ``noise`` (the world's label noise, as
    :func:`rewardlab.lab.world.preference_prob`); returns (Pairs, group [n], context one-hot [n, 2])."""
    P, C = logits.shape
    x = torch.randint(0, P, (n,), generator=generator)
    p = probs(logits[x])
    a = torch.multinomial(p, 1, generator=generator).squeeze(1)
    p_b = p.scatter(1, a[:, None], 0.0)
    b = torch.multinomial(p_b / p_b.sum(1, keepdim=True), 1, generator=generator).squeeze(1)
    group = (torch.rand(n, generator=generator) >= majority).long()
    diff = gold[group, x, a] - gold[group, x, b]
    if gold_labels:
        a_wins = diff >= 0
    else:
        p_a = preference_prob(diff, torch.zeros_like(diff), 1.0, noise)
        a_wins = torch.rand(n, generator=generator, dtype=torch.float64) < p_a
    honest = torch.rand(n, generator=generator) < signal
    ctx_group = torch.where(honest, group, torch.randint(0, 2, (n,), generator=generator))
    context = torch.nn.functional.one_hot(ctx_group, 2).float()
    return Pairs(x, torch.where(a_wins, a, b), torch.where(a_wins, b, a)), group, context


def train_micro(inputs: torch.Tensor, pairs: Pairs, context: torch.Tensor, k: int, steps: int, lr: float,
                balance: float, seed: int) -> tuple[torch.Tensor, torch.nn.Linear]:
    """Linear heads [K] over the inputs + a linear router over the context, full-batch AdamW on the mixture
    likelihood. Returns (head tables [K, P, C] float64, router)."""
    torch.manual_seed(seed)
    heads = torch.nn.Linear(inputs.shape[-1], k)
    router = torch.nn.Linear(context.shape[-1], k)
    torch.nn.init.normal_(heads.weight, std=0.5)  # asymmetric start, else the heads stay identical
    opt = torch.optim.AdamW([*heads.parameters(), *router.parameters()], lr=lr, weight_decay=1e-3)
    xc, xr = inputs[pairs.prompt, pairs.chosen], inputs[pairs.prompt, pairs.rejected]
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        logits = router(context)
        (mixture_bt_loss(heads(xc) - heads(xr), logits).mean() + balance * balance_penalty(logits)).backward()
        opt.step()
    with torch.no_grad():
        return heads(inputs).permute(2, 0, 1).double(), router


def maxmin_policy(ref_logits: torch.Tensor, tables: torch.Tensor, beta: float, lr: float, steps: int) -> torch.Tensor:
    """Policy logits after ``steps`` exact-gradient steps on min_k E_{x,y~π} tables[k] − β·KL (the worst table's
    gradient each step; one table = ordinary RLHF). tables: [K, P, C]."""
    logits = ref_logits.clone()
    for _ in range(steps):
        values = expectation(logits, tables).mean(-1)                # [K]
        reward = (maxmin_weights(values)[:, None, None] * tables).sum(0)
        logits = logits + lr * exact_gradient(logits, ref_logits, reward, beta)
    return logits


def run_seed(cfg: TwoGroupsConfig, seed: int, advance: Advance = _noop) -> dict:
    world = make_world(cfg.world, seed)
    g = torch.Generator().manual_seed(seed + 7)
    pi0 = world.policies["pi0"]
    w = group_directions(world.features.shape[-1] - 1, cfg.conflict, g)
    gold = cfg.gold_scale * torch.einsum("pcd,gd->gpc", world.features[..., 1:], w)  # [2, P, C]
    pairs, group, context = sample_group_pairs(gold, pi0, cfg.n_pairs, cfg.majority, cfg.context_signal, g,
                                               noise=cfg.world.label_noise)
    test, test_group, _ = sample_group_pairs(gold, pi0, cfg.eval_pairs, 0.5, 1.0, g, gold_labels=True)
    inputs = world.inputs().float()

    single = train_feature_rm(world, pairs, hidden=0, seed=seed, steps=cfg.train_steps)
    oracle = torch.stack([train_feature_rm(world, pairs.take(torch.nonzero(group == j).flatten()), hidden=0,
                                           seed=seed, steps=cfg.train_steps) for j in range(2)])
    heads, router = train_micro(inputs, pairs, context, cfg.k, cfg.train_steps, cfg.train_lr, cfg.balance, seed)
    with torch.no_grad():
        route = torch.softmax(router(torch.eye(2)), -1).double()        # [group, K]: weights given "I am group g"
    routed = torch.einsum("gk,kpc->gpc", route, heads)                 # the personalized reward of each group
    # MiCRo's routing from limited data: each group's weights fitted on a few of its own labelled pairs
    few = []
    for j in range(2):
        idx = torch.nonzero(group == j).flatten()[: cfg.few_shot]
        sub = pairs.take(idx)
        few.append(fit_group_weights(heads[:, sub.prompt, sub.chosen].T - heads[:, sub.prompt, sub.rejected].T))
    few_routed = torch.einsum("gk,kpc->gpc", torch.stack(few), heads)
    advance(1)

    names = [GROUPS[j] for j in test_group.tolist()]

    def acc(table_for_group) -> dict[str, float]:
        c = torch.stack([table_for_group(j)[x, y] for j, x, y in zip(test_group.tolist(), test.prompt.tolist(),
                                                                       test.chosen.tolist())])
        r = torch.stack([table_for_group(j)[x, y] for j, x, y in zip(test_group.tolist(), test.prompt.tolist(),
                                                                       test.rejected.tolist())])
        return {k: v["accuracy"] for k, v in subset_accuracy(c.numpy(), r.numpy(), names).items()}

    accuracy = {"single BT": acc(lambda j: single), "mixture (routed)": acc(lambda j: routed[j]),
                f"mixture ({cfg.few_shot}-pair routing)": acc(lambda j: few_routed[j]),
                "oracle per group": acc(lambda j: oracle[j])}
    accuracy["mixture (best head)"] = {GROUPS[j]: max(acc(lambda _, k=k: heads[k])[GROUPS[j]] for k in range(cfg.k))
                                       for j in range(2)}

    gold_std = torch.stack([standardize(gold[j], pi0) for j in range(2)])
    start = expectation(pi0, gold_std).mean(-1)
    policies = {"single BT": maxmin_policy(pi0, standardize(single, pi0)[None], cfg.beta, cfg.rl_lr, cfg.rl_steps),
                "MaxMin over mixture heads": maxmin_policy(pi0, torch.stack([standardize(h, pi0) for h in heads]),
                                                           cfg.beta, cfg.rl_lr, cfg.rl_steps)}
    gain = {name: dict(zip(GROUPS, (expectation(lg, gold_std).mean(-1) - start).tolist()))
            for name, lg in policies.items()}
    advance(1)
    return {"accuracy": accuracy, "gold_gain": gain, "route": route.tolist(),
            "label_share_A": float((group == 0).double().mean())}


def run(cfg: TwoGroupsConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    return summarize(cfg, [run_seed(cfg, s, advance) for s in seeds])


def _worst(d: dict[str, float]) -> float:
    return min(d.values())


def summarize(cfg: TwoGroupsConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims and printed lines from the per-seed numbers (pure)."""
    acc = {m: {g: [o["accuracy"][m][g] for o in per_seed] for g in GROUPS} for m in per_seed[0]["accuracy"]}
    worst_single = [_worst(o["accuracy"]["single BT"]) for o in per_seed]
    worst_mix = [_worst(o["accuracy"]["mixture (routed)"]) for o in per_seed]
    micro = Claim(
        "two-groups-mixture", "two_groups", "Shen et al. 2025 (MiCRo)",
        "With two annotator groups whose preferences conflict, a single BT RM fits the majority and fails the "
        "minority; a mixture of BT heads with a context router, trained on the same unlabelled-by-group data, "
        "recovers both",
        "mixture with routing ≫ single BT on the minority group, close to per-group oracles",
        "worst-group accuracy(mixture, routed) − worst-group accuracy(single BT) consistently > 0",
        "; ".join(f"{m}: A {fmt(acc[m]['A'])}, B {fmt(acc[m]['B'])}" for m in acc)
        + f" (conflict cos {cfg.conflict:g}, {cfg.majority:.0%} of labels from A, label noise "
        f"{cfg.world.label_noise:.0%})",
        check_sign([a - b for a, b in zip(worst_mix, worst_single)]),
        {"worst_single": worst_single, "worst_mixture": worst_mix, "accuracy": acc})
    gains = {m: {g: [o["gold_gain"][m][g] for o in per_seed] for g in GROUPS} for m in per_seed[0]["gold_gain"]}
    worst_gain = {m: [_worst(o["gold_gain"][m]) for o in per_seed] for m in gains}
    mm, sb = "MaxMin over mixture heads", "single BT"
    maxmin = Claim(
        "two-groups-maxmin", "two_groups", "Chakraborty et al. 2024 (MaxMin-RLHF)",
        "Optimizing one BT reward learned from pooled preferences raises the majority's gold and lowers the "
        "minority's; optimizing the worst group's reward (MaxMin over the mixture's heads) serves both",
        "MaxMin raises the worst group's gold above single-reward RLHF",
        f"worst-group gold gain(MaxMin) − worst-group gold gain(single BT) after {cfg.rl_steps} exact-gradient "
        f"steps (β {cfg.beta:g}, lr {cfg.rl_lr:g}) consistently > 0",
        "; ".join(f"{m}: gold gain A {fmt(gains[m]['A'])}, B {fmt(gains[m]['B'])}" for m in gains)
        + " (π₀-standardized units)",
        check_sign([a - b for a, b in zip(worst_gain[mm], worst_gain[sb])]),
        {"worst_gain": worst_gain, "gains": gains})
    lines = [f"[two_groups] {c.id}: {c.measured} -> {c.verdict}" for c in (micro, maxmin)]
    data = {"per_seed": per_seed, "accuracy": acc, "gold_gain": gains,
            "mean_route": np.mean([o["route"] for o in per_seed], axis=0).tolist()}
    return ExperimentResult("two_groups", "Two annotator groups — single BT vs mixture (MiCRo) and MaxMin",
                            [micro, maxmin], data, lines)

