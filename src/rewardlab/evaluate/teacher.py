"""Teacher metrics runner (Razin et al. 2025): sample m responses per prompt from a policy, score them
with any :class:`~rewardlab.rewards.base.Reward` (and optionally a gold one), report reward variance and on-policy
accuracy.

The recipe is: ``rollout = sample_rollout(policy, tokenizer, prompts, cfg)`` → ``rewards = score_items(reward,
rollout.prompts, rollout.responses)`` → :func:`~rewardlab.evaluate.metrics.reward_variance` /
:func:`~rewardlab.evaluate.metrics.on_policy_accuracy` on ``(rewards, rollout.group)``. :func:`teacher_metrics`
runs it; pass the same ``rollout`` to judge several rewards under the same policy samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rewardlab.data.records import Prompt, Response
from rewardlab.evaluate import metrics as M


@dataclass
class SamplingConfig:
    """How responses are drawn from the policy: ``num_samples`` (m) per prompt, seeded, batched, on ``engine``
    (transformers or vllm, :mod:`rewardlab.models.engines`)."""

    num_samples: int = 10
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 64
    max_prompt_length: int | None = None
    engine: str = "transformers"


def _progress(description: str):
    """A rich progress bar on stderr; silent when stderr is not a terminal (logs stay clean)."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True, console=Console(stderr=True), disable=not sys.stderr.isatty())


def sample_rollout(policy, tokenizer, prompts: Sequence[Prompt], config: SamplingConfig | None = None,
                   sampler: Callable | None = None):
    """Draw ``config.num_samples`` responses per prompt; returns a ``Rollout`` (``.responses``, ``.group``, ...).

    ``sampler`` has the signature of :func:`rewardlab.models.generation.sample` (default: ``config.engine``'s,
    :func:`rewardlab.models.engines.policy_sampler`, shut down when the rollout is drawn). Prompts are sampled
    in chunks of about ``batch_size`` responses for the progress bar; chunk ``c`` uses seed ``config.seed + c``,
    so the rollout is a deterministic function of (policy, prompts, config).
    """
    from rewardlab.models.engines import policy_sampler
    from rewardlab.models.generation import Rollout

    cfg = config or SamplingConfig()
    if sampler is None:
        with policy_sampler(cfg.engine, policy, tokenizer) as engine:
            return sample_rollout(policy, tokenizer, prompts, cfg, engine)
    per_chunk = max(1, cfg.batch_size // cfg.num_samples)
    parts: list = []
    with _progress(f"sampling {cfg.num_samples}/prompt") as bar:
        task = bar.add_task("", total=len(prompts))
        for c, start in enumerate(range(0, len(prompts), per_chunk)):
            chunk = list(prompts[start : start + per_chunk])
            ro = sampler(policy, tokenizer, chunk, num_samples=cfg.num_samples, max_new_tokens=cfg.max_new_tokens,
                         temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed + c,
                         batch_size=cfg.batch_size, max_prompt_length=cfg.max_prompt_length)
            ro.group = [g + start for g in ro.group]
            parts.append(ro)
            bar.advance(task, len(chunk))
    return Rollout(prompts=[p for r in parts for p in r.prompts], responses=[x for r in parts for x in r.responses],
                   group=[g for r in parts for g in r.group],
                   prompt_ids=[x for r in parts for x in r.prompt_ids],
                   response_ids=[x for r in parts for x in r.response_ids])


def score_items(reward, prompts: Sequence[Prompt], responses: Sequence[Response], chunk_size: int = 256,
                description: str = "scoring") -> np.ndarray:
    """``reward.score`` in chunks with a progress bar; float64 ``[n]`` or ``[n, k]`` (k outputs, e.g. members)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    out = []
    with _progress(description) as bar:
        task = bar.add_task("", total=len(prompts))
        for s in range(0, len(prompts), chunk_size):
            out.append(M.as_numpy(reward.score(list(prompts[s : s + chunk_size]),
                                               list(responses[s : s + chunk_size]))))
            bar.advance(task, len(out[-1]))
    return np.concatenate(out) if out else np.zeros(0)


def scalar(scores: np.ndarray) -> np.ndarray:
    """One reward per item: ``[n]`` unchanged; ``[n, k]`` (ensemble members / objectives) -> mean over k."""
    return scores if scores.ndim == 1 else scores.mean(axis=1)


def teacher_metrics_from_scores(rewards: np.ndarray, group: Sequence[int],
                                gold: np.ndarray | None = None) -> dict[str, Any]:
    """RV (global standardization), per-prompt RV and, with gold rewards, on-policy accuracy (pooled over
    within-prompt pairs whose gold rewards differ, plus per prompt) and the gold reward's own RV.

    Also the per-prompt pieces a bootstrap over prompts needs (:mod:`rewardlab.evaluate.suite`): the mean of the
    standardized rewards and the number of responses per prompt, and the number of on-policy pairs per prompt."""
    r = scalar(M.as_numpy(rewards))
    g_idx = np.asarray(group, dtype=np.int64)
    count = np.bincount(g_idx).astype(np.float64) if g_idx.size else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_mean = np.bincount(g_idx, weights=M.standardize_global(r)) / count if g_idx.size else np.zeros(0)
    out: dict[str, Any] = {
        "reward_variance": M.reward_variance(r, group),
        "reward_variance_per_prompt": M.per_prompt_reward_variance(r, group).tolist(),
        "reward_mean_per_prompt": z_mean.tolist(), "responses_per_prompt": count.tolist(),
        "reward_mean": float(r.mean()), "reward_std": float(r.std()),
        "n_prompts": len(set(group)), "n_responses": int(r.size),
    }
    if gold is not None:
        g = scalar(M.as_numpy(gold))
        out["on_policy_accuracy"] = M.on_policy_accuracy(r, g, group)
        out["on_policy_accuracy_per_prompt"] = M.on_policy_accuracy(r, g, group, per_prompt=True).tolist()
        out["on_policy_pairs_per_prompt"] = M.on_policy_pair_counts(g, group).tolist()
        out["gold_reward_variance"] = M.reward_variance(g, group)
        out["gold_mean"] = float(g.mean())
    return out


def teacher_metrics(reward, prompts: Sequence[Prompt] | None = None, policy=None, tokenizer=None,
                    gold=None, config: SamplingConfig | None = None, sampler: Callable | None = None,
                    rollout=None) -> dict[str, Any]:
    """Teacher metrics of ``reward`` for ``policy`` on ``prompts`` (or on a given ``rollout``).

    Returns :func:`teacher_metrics_from_scores`'s dict plus the sampling config and mean response length
    (characters). ``gold`` is an optional reference Reward for on-policy accuracy.
    """
    cfg = config or SamplingConfig()
    if rollout is None:
        if prompts is None:
            raise ValueError("pass a rollout, or prompts and a policy (+ tokenizer)")
        rollout = sample_rollout(policy, tokenizer, prompts, cfg, sampler)
    r = score_items(reward, rollout.prompts, rollout.responses, description="scoring samples")
    g = score_items(gold, rollout.prompts, rollout.responses, description="gold scoring") if gold is not None else None
    out = teacher_metrics_from_scores(r, rollout.group, g)
    out["sampling"] = asdict(cfg)
    out["mean_response_chars"] = float(np.mean([len(x) for x in rollout.responses])) if rollout.responses else 0.0
    return out
