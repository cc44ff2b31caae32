"""Pieces shared by the experiments: the result record, progress callback, teacher metrics of reward tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rewardlab.evaluate.metrics import (
    on_policy_accuracy,
    pairwise_accuracy,
    per_prompt_reward_variance,
    reward_variance,
)
from rewardlab.lab.verdicts import Claim
from rewardlab.lab.world import Pairs, TabularWorld, sample_responses

# advance(n_units) — called by experiments as they finish units of work (progress bars).
Advance = Callable[[int], None]


def _noop(_: int) -> None:
    pass


@dataclass
class ExperimentResult:
    name: str
    title: str
    claims: list[Claim]
    data: dict[str, Any]                        # everything the figures and results.json need (JSON-able)
    lines: list[str] = field(default_factory=list)  # the measured numbers, as printed
    seconds: float = 0.0


def jsonable(x: Any) -> Any:
    """Tensors/arrays -> nested lists of plain floats (6 decimals; NaN/inf -> None), recursively."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, float | np.floating):
        return round(float(x), 6) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def teacher_metrics(world: TabularWorld, tables: torch.Tensor, logits: torch.Tensor, eval_pairs: Pairs,
                    m: int, generator: torch.Generator) -> dict[str, np.ndarray]:
    """Razin et al.'s teacher metrics of each reward table in ``tables`` [R, P, C] for the policy ``logits``,
    measured the way a practitioner would (via :mod:`rewardlab.evaluate.metrics`): m sampled responses
    per prompt -> RV (global standardization) and on-policy accuracy vs r*; off-policy accuracy on ``eval_pairs``
    (fixed pairs ordered by r*). Also the per-prompt RV ([R, P]). Returns numpy arrays over R."""
    ys = sample_responses(logits, m, generator)        # [P, m]
    gold_s = world.gold.gather(1, ys)
    rv, on_acc, off_acc, rv_prompt = [], [], [], []
    for table in tables:
        s = table.gather(1, ys)
        rv.append(reward_variance(s))
        rv_prompt.append(per_prompt_reward_variance(s))
        on_acc.append(on_policy_accuracy(s, gold_s))
        off_acc.append(pairwise_accuracy(table[eval_pairs.prompt, eval_pairs.chosen],
                                         table[eval_pairs.prompt, eval_pairs.rejected]))
    return {"rv": np.array(rv), "on_acc": np.array(on_acc), "off_acc": np.array(off_acc),
            "rv_per_prompt": np.stack(rv_prompt)}
