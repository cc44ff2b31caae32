"""Teacher monitor: is the reward a good teacher *during* someone else's RL run?

Per reward call (one GRPO/RLOO generation batch), over the scored completions grouped by prompt:

- ``teacher/reward_variance`` -- RV = mean_x Var_{y~π(x)} r̃(x, y), r̃ = reward standardized with the batch's
  global mean and population std (Razin et al. 2025, "What Makes a Reward Model a Good Teacher?"; computed by
  :func:`rewardlab.evaluate.metrics.reward_variance`). Low RV ⇒ flat objective ⇒ slow policy-gradient progress,
  however accurate the RM.
- ``teacher/frac_flat_groups`` -- the fraction of prompt groups whose within-group std of r̃ is below ``eps``
  (default 0.1, i.e. a tenth of the batch's reward std; an all-equal batch has r̃ ≡ 0 and every group is flat).
  A flat group gives GRPO zero advantage (or amplified noise after its per-group std division).
- ``teacher/reward_length_pearson`` -- Pearson correlation of raw reward with completion length over all scored
  completions of the batch (pooled, not within groups); lengths in tokens when the trainer passes
  ``completion_ids`` (TRL does), else in characters (conversations: summed message contents). NaN when either is
  constant.
- ``teacher/num_groups`` -- groups that entered the numbers.

Groups with fewer than 2 scored completions and non-finite scores (``None``/NaN) are left out before anything is
computed. TRL: prompts are grouped by equality (a GRPO batch repeats each prompt ``num_generations`` times);
verl: by the ``uid`` verl gives each prompt's rollouts.

TRL usage (the metrics reach TRL's own logs -- console, log_history, every ``report_to`` -- through the
``log_metric`` hook TRL ≥ 1.x hands reward functions, averaged per logging step like ``reward``)::

    monitor = TeacherMonitor()
    trainer = GRPOTrainer(..., reward_funcs=[monitor.wrap(make_reward_func(SPEC_OR_URL))], callbacks=[monitor])

As a callback it adds metrics that did not go through ``log_metric`` (a trainer without the hook) to the logs in
``on_log`` (reporters that run before user callbacks then miss them); ``monitor.history`` keeps every call's
numbers with its ``global_step``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from transformers import TrainerCallback

from rewardlab.evaluate import metrics as M

DEFAULT_EPS = 0.1


def group_metrics(uids: Sequence[Any], scores: Sequence[float], lengths: Sequence[float],
                  eps: float = DEFAULT_EPS) -> dict[str, float]:
    """Teacher metrics of one batch (see the module docstring): ``uids[i]`` names item i's prompt group (any
    hashable: verl's ``non_tensor_batch["uid"]``), ``scores[i]`` its reward, ``lengths[i]`` its completion length.

    verl: ``group_metrics(batch.non_tensor_batch["uid"], batch.batch["token_level_scores"].sum(-1).tolist(),
    batch.batch["response_mask"].sum(-1).tolist())`` after the reward step, then ``metrics.update(...)``."""
    if not len(uids) == len(scores) == len(lengths):
        raise ValueError(f"{len(uids)} uids, {len(scores)} scores and {len(lengths)} lengths")
    r = np.array([math.nan if s is None else float(s) for s in scores], dtype=np.float64)
    n = np.asarray(lengths, dtype=np.float64)
    g = np.unique(np.array([str(u) for u in uids]), return_inverse=True)[1].reshape(-1)
    keep = np.isfinite(r)
    if keep.any():
        keep &= np.bincount(g[keep], minlength=g.size)[g] >= 2
    if not keep.any():
        return {"teacher/reward_variance": math.nan, "teacher/frac_flat_groups": math.nan,
                "teacher/reward_length_pearson": math.nan, "teacher/num_groups": 0.0}
    r, n = r[keep], n[keep]
    g = np.unique(g[keep], return_inverse=True)[1].reshape(-1)  # groups 0..P-1 after filtering
    per_group_std = np.sqrt(M.per_prompt_reward_variance(r, g))
    return {"teacher/reward_variance": M.reward_variance(r, g),
            "teacher/frac_flat_groups": float(np.mean(per_group_std < eps)),
            "teacher/reward_length_pearson": M.pearson(r, n),
            "teacher/num_groups": float(per_group_std.size)}


def _group_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


def _chars(completion: Any) -> int:
    if isinstance(completion, str):
        return len(completion)
    return sum(len(str(m.get("content", ""))) for m in completion)


class TeacherMonitor(TrainerCallback):
    """Wraps TRL reward functions to compute :func:`group_metrics` on every batch they score, and logs them."""

    def __init__(self, eps: float = DEFAULT_EPS):
        self.eps = eps
        self.history: list[dict[str, Any]] = []  # one entry per reward call: step, length unit, metrics
        self._pending: list[dict[str, float]] = []  # metrics not yet in a log (no log_metric hook)

    def wrap(self, reward_func: Callable[..., list]) -> Callable[..., list]:
        """``reward_func`` unchanged in what it returns (same ``__name__``, so TRL's ``rewards/NAME`` keys stay),
        observed on the way out."""

        @functools.wraps(reward_func)
        def monitored(prompts: Sequence[Any], completions: Sequence[Any], **kwargs) -> list:
            scores = reward_func(prompts=prompts, completions=completions, **kwargs)
            self.observe(prompts, completions, scores, completion_ids=kwargs.get("completion_ids"),
                         trainer_state=kwargs.get("trainer_state"), log_metric=kwargs.get("log_metric"))
            return scores

        return monitored

    def observe(self, prompts: Sequence[Any], completions: Sequence[Any], scores: Sequence[float | None],
                completion_ids: Sequence[Sequence[int]] | None = None, trainer_state: Any = None,
                log_metric: Callable[[str, float], None] | None = None) -> dict[str, float]:
        """Record one scored batch; returns its metrics."""
        if completion_ids is not None:
            lengths, unit = [len(ids) for ids in completion_ids], "tokens"
        else:
            lengths, unit = [_chars(c) for c in completions], "chars"
        values = group_metrics([_group_key(p) for p in prompts], scores, lengths, self.eps)
        step = getattr(trainer_state, "global_step", len(self.history))
        self.history.append({"step": step, "length_unit": unit, **values})
        if log_metric is not None:
            for key, v in values.items():
                log_metric(key, v)
        else:
            self._pending.append(values)
        return values

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Add the pending metrics (means over the calls since the last log, NaNs skipped) to ``logs``."""
        if not self._pending or logs is None:
            return
        for key in self._pending[0]:
            vals = [m[key] for m in self._pending if not math.isnan(m[key])]
            logs[key] = sum(vals) / len(vals) if vals else None
            if state.log_history:
                state.log_history[-1][key] = logs[key]
        self._pending.clear()
