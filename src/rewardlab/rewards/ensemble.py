"""Reward-model ensembles with conservative aggregation (Coste et al. 2023, "Reward Model Ensembles Help Mitigate
Overoptimization").

Members are first standardized on a reference set, ``z_m = (r_m − μ_m) / σ_m`` (so that no member dominates by
scale), then aggregated over the m members:

* ``mean``: ``(1/m) Σ z_m``
* ``wco`` (worst-case optimization): ``min_m z_m``
* ``uwo`` (uncertainty-weighted optimization): ``(1/m) Σ z_m − λ · (1/m) Σ (z_m − z̄)²`` — the intra-ensemble
  (population) variance; λ ≈ 0.5 for best-of-n and 0.1 for RL in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.rewards.base import Reward, is_batch_invariant

METHODS = ("mean", "wco", "uwo")


def aggregate(scores: torch.Tensor, method: str = "mean", uwo_lambda: float = 0.5) -> torch.Tensor:
    """Aggregate member scores ``[n, m]`` into ``[n]`` with ``method`` in mean / wco / uwo (formulas above)."""
    if method == "mean":
        return scores.mean(1)
    if method == "wco":
        return scores.min(1).values
    if method == "uwo":
        return scores.mean(1) - uwo_lambda * scores.var(1, unbiased=False)
    raise ValueError(f"aggregation must be one of {METHODS}, got {method!r}")


class EnsembleReward:
    """Ensemble of rewards; ``score`` returns the aggregated ``[n]``, ``score_members`` the ``[n, m]`` z's.

    ``standardize=True`` requires :meth:`calibrate` (reference set) before scoring; ``means``/``stds`` may also be
    given directly. ``standardize=False`` aggregates the raw member scores.
    """

    def __init__(self, members: Sequence[Reward], method: str = "mean", uwo_lambda: float = 0.5,
                 standardize: bool = True, means: Sequence[float] | None = None,
                 stds: Sequence[float] | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if method not in METHODS:
            raise ValueError(f"aggregation must be one of {METHODS}, got {method!r}")
        self.members, self.method, self.uwo_lambda, self.standardize = list(members), method, uwo_lambda, standardize
        self.means = None if means is None else torch.tensor(list(means), dtype=torch.float32)
        self.stds = None if stds is None else torch.tensor(list(stds), dtype=torch.float32)

    @property
    def batch_invariant(self) -> bool:
        return all(is_batch_invariant(m) for m in self.members)

    def raw_scores(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """Unstandardized member scores ``[n, m]``. A member returning ``[n, k]`` (a k-head model trained as a
        cheap ensemble, ``rewardlab train --num-outputs k``) contributes k columns from one forward pass."""
        cols = []
        for m in self.members:
            s = m.score(prompts, responses).float()
            if s.dim() not in (1, 2):
                raise ValueError(f"ensemble member {getattr(m, 'name', m)!r} returned shape {tuple(s.shape)}")
            cols.append(s[:, None] if s.dim() == 1 else s)
        return torch.cat(cols, 1)

    def calibrate(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
        """Measure each member's mean and (population) std on a reference set."""
        raw = self.raw_scores(prompts, responses)
        self.means, self.stds = raw.mean(0), raw.std(0, unbiased=False).clamp_min(1e-8)

    def score_members(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """Standardized member scores ``[n, m]``."""
        raw = self.raw_scores(prompts, responses)
        if not self.standardize:
            return raw
        if self.means is None or self.stds is None:
            raise RuntimeError("EnsembleReward(standardize=True) needs calibrate() on a reference set first")
        if self.means.numel() != raw.shape[1]:
            raise ValueError(f"{raw.shape[1]} member columns but {self.means.numel()} standardization stats")
        return (raw - self.means) / self.stds

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        return aggregate(self.score_members(prompts, responses), self.method, self.uwo_lambda)


def ensemble_from_spec(spec: str, load: Callable[[str], Reward]) -> EnsembleReward:
    """``ensemble:METHOD[=LAMBDA]:SPEC1,SPEC2,...`` → :class:`EnsembleReward` (members resolved with ``load``).

    Examples: ``ensemble:wco:rm0,rm1,rm2``, ``ensemble:uwo=0.1:rm0,rm1``. Standardization needs a ``calibrate``
    call on a reference set (the optimize loops do it with samples of the initial policy).
    """
    from rewardlab.errors import UserError

    try:
        head, method_part, members_part = spec.split(":", 2)
    except ValueError:
        raise UserError(f"reward spec {spec!r}: expected ensemble:METHOD[=LAMBDA]:SPEC1,SPEC2,...") from None
    method, _, lam = method_part.partition("=")
    if head != "ensemble" or method not in METHODS:
        raise UserError(f"reward spec {spec!r}: METHOD must be one of {', '.join(METHODS)}")
    try:
        uwo_lambda = float(lam) if lam else 0.5
    except ValueError:
        raise UserError(f"reward spec {spec!r}: LAMBDA {lam!r} is not a number") from None
    members = [s for s in members_part.split(",") if s]
    if not members:
        raise UserError(f"reward spec {spec!r}: no member specs")
    return EnsembleReward([load(s) for s in members], method=method, uwo_lambda=uwo_lambda)
