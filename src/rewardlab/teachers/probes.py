"""Measurements of `rewardlab teachers` on one shared sample of the policy, and short gold-tracked probes.

Shared sample: m responses per prompt drawn once (seeded) from the policy and scored by every reward and by the
gold, so every reward is judged on identical responses. On it, per reward:

* teacher metrics (:func:`rewardlab.evaluate.teacher.teacher_metrics_from_scores`): reward variance
  RV = mean_x Var_{y~π(x)} r̃(x, y) with r̃ globally standardized (Razin et al. 2025) and, with a gold, on-policy
  accuracy; 95% percentile bootstrap CIs resampling prompts (:func:`rewardlab.evaluate.suite.replicates`, the same
  resamples for every reward, so differences are paired);
* best-of-n on the shared sample (free): the unbiased estimate of the gold of the proxy's pick among n ≤ m samples
  (Gao et al. 2022, :func:`rewardlab.optimize.bon.bon_estimate`), as a gain over n = 1, against the KL bound
  log n − (n−1)/n (Beirami et al. 2024). Best-of-n only uses each reward's *ranking* of a prompt's samples, so it
  checks direction, not variance.

RL probe: ``steps`` of RLOO (k = 2, β = 0.05, as in Razin et al.) from the same initial policy for every reward and
the same seeds, against the reward standardized with its mean and std on the shared sample (so every reward
speaks in the units RV is measured in), tracking gold, proxy and KL(π‖π₀) on fixed evaluation prompts
(:class:`rewardlab.optimize.gold.GoldTracker`). The default optimizer is plain SGD: Razin et al.'s mechanism is the
size of the policy gradient, and AdamW divides each step by the gradient's RMS, which hides it
(``optimizer="adamw"`` is what most trainers use; the probe then measures that setting).

Each probe trains, by default (``lora_r = 0``), all weights of a deep copy of the policy (and the session keeps a
second, frozen copy as π₀). With ``lora_r > 0`` (``--probe-lora-r``, for pretrained policies too large to copy) it
trains a fresh LoRA adapter on the shared policy itself, its reference being the policy with the adapter disabled,
and removes the adapter after: no copy at all, and the policy's weights are never written
(:func:`rewardlab.optimize.lora.restored`). A LoRA probe measures a smaller update space than full fine-tuning, and
SGD on an adapter whose B starts at 0 moves slowly: it usually wants a larger ``lr`` (or ``optimizer="adamw"``).

Batch-dependent rewards (:func:`rewardlab.rewards.base.is_batch_invariant` False, e.g. a pairwise judge
``against="others"``, whose score of a response is its mean win probability against the other responses to the same
prompt *in the same call*) are scored one unit per call (:func:`score_units`): on the shared sample one prompt's m
samples (the group the judge is meant to compare, whatever the chunking or a prompt repeated in ``--prompts``), on
``--data`` one pair (so the chosen response scores P(chosen ≻ rejected) and the accuracy is the judge's own pairwise
accuracy, as ``rewardlab judge`` computes it, even where several pairs share a prompt). The RL probe scores each step's
samples in one call, as ``rewardlab optimize`` does, and the judge groups them by prompt itself. Its proxy gain in
the probe is 0 by construction (a group's mean win rate is ½ whatever the policy), so the probe's reward-hacking flag
cannot fire for it; its gold gain, best-of-n and the direction metrics are unaffected.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardlab.data.records import PreferencePair, Prompt, Response
from rewardlab.evaluate import metrics as M
from rewardlab.evaluate.suite import CI_LEVEL, pair_metrics, replicates, score_with_members
from rewardlab.evaluate.teacher import teacher_metrics_from_scores
from rewardlab.optimize.bon import bon_estimate, bon_kl
from rewardlab.optimize.lora import restored
from rewardlab.optimize.rloo import RLOOArgs, train_rloo
from rewardlab.rewards.base import Reward, is_batch_invariant
from rewardlab.rewards.shaping import calibrate


@dataclass
class ProbeConfig:
    """The RL probe: ``steps`` (0: none) of RLOO per reward and seed, from the same start."""

    steps: int = 10
    seeds: int = 3
    seed: int = 0
    algo: str = "rloo"  # rloo | grpo
    k: int = 2
    kl_coef: float = 0.05
    lr: float = 3e-3
    optimizer: str = "sgd"  # sgd | adamw (module docstring)
    prompts_per_step: int = 8
    max_new_tokens: int = 32
    eval_prompts: int = 16
    eval_samples: int = 4
    evaluations: int = 2  # gold-tracking points along the probe, besides step 0
    lora_r: int = 0  # 0: full fine-tuning of a copy of the policy; > 0: a LoRA adapter of this rank (docstring)


class StandardizedReward:
    """``(r − mean) / std`` with fixed statistics (measured on the shared sample). No ``calibrate``: the optimize
    loop must not re-measure them on its own samples."""

    def __init__(self, base: Reward, mean: float, std: float):
        self.base, self.mean, self.std = base, float(mean), float(std) if std > 0 else 1.0
        self.batch_invariant = getattr(base, "batch_invariant", True)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        s, _ = score_with_members(self.base, prompts, responses, description="probe scoring")
        return (torch.from_numpy(s).float() - self.mean) / self.std


def score_units(reward: Reward, prompts: Sequence[Prompt], responses: Sequence[Response], units: Sequence[int],
                description: str) -> np.ndarray:
    """Scalar scores ``[n]`` (:func:`~rewardlab.evaluate.suite.score_with_members`). A batch-invariant reward is
    scored in one pass; any other is called once per unit (the items sharing a value of ``units``), so what it
    compares is exactly one unit (module docstring)."""
    if is_batch_invariant(reward):
        return score_with_members(reward, prompts, responses, description=description)[0]
    u = np.asarray(units)
    out = np.empty(len(prompts), dtype=np.float64)
    for unit in dict.fromkeys(u.tolist()):
        idx = np.flatnonzero(u == unit)
        out[idx] = score_with_members(reward, [prompts[i] for i in idx], [responses[i] for i in idx],
                                      description=description)[0]
    return out


def score_shared(reward: Reward, rollout, name: str) -> np.ndarray:
    """The reward's scalar scores ``[n]`` of the shared sample (ensembles aggregated by their own rule; a reward that
    standardizes its members measures their statistics on this sample first, as the optimize loops do; a
    batch-dependent one is scored one prompt's samples per call)."""
    calibrate(reward, rollout.prompts, rollout.responses)
    return score_units(reward, rollout.prompts, rollout.responses, rollout.group, f"scoring {name}")


def _ci(rep: np.ndarray | None) -> list[float] | None:
    return None if rep is None else list(M.percentile_ci(rep, CI_LEVEL))


def shared_metrics(scores: np.ndarray, group: Sequence[int], gold: np.ndarray | None,
                   pair_scores: tuple[np.ndarray, np.ndarray] | None, pairs: Sequence[PreferencePair] | None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, replicates): accuracy on ``pairs`` (off-policy), RV and on-policy accuracy on the shared sample,
    each with ``KEY_ci``; the bootstrap replicates (same resamples for every reward) for paired comparisons."""
    t = teacher_metrics_from_scores(scores, group, gold)
    doc: dict[str, Any] = {"teacher": t}
    out: dict[str, Any] = {"reward_variance": t["reward_variance"], "on_policy_accuracy": t.get("on_policy_accuracy"),
                           "accuracy": None, "reward_mean": t["reward_mean"], "reward_std": t["reward_std"]}
    if pair_scores is not None and pairs:
        pm = pair_metrics(pair_scores[0], pair_scores[1], pairs)
        doc["pairs"] = pm
        out["accuracy"] = pm["accuracy"]
    reps = {key: replicates(doc, key) for key in ("accuracy", "reward_variance", "on_policy_accuracy")}
    for key, rep in reps.items():
        out[f"{key}_ci"] = _ci(rep)
    return out, reps


def as_matrix(values: np.ndarray, group: Sequence[int]) -> np.ndarray:
    """``[P, m]`` from per-item values whose prompt indices ``group`` are contiguous with m items each."""
    g = np.asarray(group)
    counts = np.bincount(g)
    if counts.size == 0 or (counts != counts[0]).any():
        raise ValueError("best-of-n needs the same number of samples for every prompt")
    order = np.argsort(g, kind="stable")
    return np.asarray(values, dtype=np.float64)[order].reshape(counts.size, counts[0])


def bon_probe(proxy: np.ndarray, gold: np.ndarray, group: Sequence[int], seed: int = 0) -> dict[str, Any]:
    """Best-of-n on the shared sample: gold and proxy gain over n = 1 for n = 1, 2, 4, ..., m (mean over prompts),
    the KL bound, and the 95% bootstrap CI over prompts of the gold gain at n = m (same resamples for every
    reward)."""
    p, g = as_matrix(proxy, group), as_matrix(gold, group)
    m = p.shape[1]
    ns = sorted({2**i for i in range(int(math.log2(m)) + 1)} | {m})
    est = bon_estimate(torch.from_numpy(p), torch.from_numpy(g), ns).numpy()       # [P, len(ns)]
    z = (p - p.mean()) / (p.std() or 1.0)                                           # proxy in RV's units
    est_proxy = bon_estimate(torch.from_numpy(z), torch.from_numpy(z), ns).numpy()
    gain = est - est[:, :1]
    reps = gain[:, -1][M.bootstrap_indices(gain.shape[0], 2000, seed)].mean(1)
    return {"n": ns, "kl_bound": [float(bon_kl(n)) for n in ns], "gold_gain": gain.mean(0).tolist(),
            "proxy_gain": (est_proxy - est_proxy[:, :1]).mean(0).tolist(),
            "gold_gain_at_m": float(gain[:, -1].mean()), "gold_gain_at_m_ci": list(M.percentile_ci(reps, CI_LEVEL))}


def rl_probe(policy, tokenizer, reward: Reward, mean: float, std: float, prompts: Sequence[Prompt],
             gold: Reward, cfg: ProbeConfig, seed: int, max_prompt_length: int | None = None) -> dict[str, Any]:
    """One RL probe from ``policy`` (left unchanged: a copy is trained, or with ``cfg.lora_r`` an adapter on it,
    removed after): the gold-tracking evaluations, and the realized gold and proxy gains (last evaluation − step
    0)."""
    args = RLOOArgs(algo=cfg.algo, k=cfg.k, kl_coef=cfg.kl_coef, steps=cfg.steps, lr=cfg.lr,
                    optimizer=cfg.optimizer, prompts_per_step=cfg.prompts_per_step,
                    max_new_tokens=cfg.max_new_tokens, max_prompt_length=max_prompt_length, seed=seed,
                    eval_every=max(1, cfg.steps // max(cfg.evaluations, 1)), eval_prompts=cfg.eval_prompts,
                    eval_samples=cfg.eval_samples, dtype="fp32",
                    max_grad_norm=math.inf if cfg.optimizer == "sgd" else 1.0, lora_r=cfg.lora_r)
    standardized = StandardizedReward(reward, mean, std)
    if cfg.lora_r:
        with restored(policy):  # a fresh adapter on the shared policy, removed on exit
            summary = train_rloo(policy, tokenizer, standardized, prompts, args, gold=gold, progress=False)
    else:
        student = copy.deepcopy(policy)
        summary = train_rloo(student, tokenizer, standardized, prompts, args, gold=gold, progress=False)
        del student  # and the session's frozen reference with it: freed by reference counting (tested)
    hist = summary["evaluations"]
    return {"seed": seed, "evaluations": hist, "gold_gain": hist[-1]["gold_mean"] - hist[0]["gold_mean"],
            "proxy_gain": hist[-1]["proxy_mean"] - hist[0]["proxy_mean"], "kl": hist[-1]["kl"],
            "wall_time_s": summary["wall_time_s"]}
