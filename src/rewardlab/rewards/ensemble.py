"""Reward-model ensembles with conservative aggregation (Coste et al. 2023, "Reward Model Ensembles Help Mitigate
Overoptimization").

Members are first standardized on a reference set, ``z_m = (r_m − μ_m) / σ_m`` (so that no member dominates by
scale), then aggregated over the m members:

* ``mean``: ``(1/m) Σ z_m``
* ``wco`` (worst-case optimization): ``min_m z_m``
* ``uwo`` (uncertainty-weighted optimization): ``(1/m) Σ z_m − λ · (1/m) Σ (z_m − z̄)²`` — the intra-ensemble
  (population) variance; λ ≈ 0.5 for best-of-n and 0.1 for RL in the paper.
* ``brme`` (Yan et al. 2024, "Reward-Robust RLHF in LLMs", arXiv 2409.15360): a Bayesian reward-model ensemble whose
  heads each give a Gaussian reward ``N(μ_i, σ_i²)``; the head with the lowest uncertainty is the *nominal* reward
  and the robust reward blends it with the worst head, per item::

      i* = argmin_i σ_i,     r = λ · μ_{i*} + (1 − λ) · min_i μ_i,     λ ∈ [0, 1]

  (λ = 1: the nominal head alone; λ = 0: worst-case over the heads' means, ``wco``). Here a head is a member with
  k ≥ 2 outputs (a k-head checkpoint, ``rewardlab train --num-outputs k``): ``μ_i`` and ``σ_i`` are the mean and the
  population std of its k standardized outputs — the head's Gaussian estimated from its own sub-ensemble, since no
  trainer here fits BRME's mean/std heads. λ has no default (the paper treats it as the performance/robustness
  trade-off to choose).

Where (μ_m, σ_m) come from: given (``means=``/``stds=``); else each member's manifest ``normalization``
(``rewardlab calibrate``, or the eval split at the end of ``rewardlab train``; a k-output member uses its per-output
stats) when every member has one; else :meth:`EnsembleReward.calibrate` on a reference set. The optimize loops always
re-calibrate on samples of the initial policy; ``score``/``serve`` use the manifests, or ``--reference FILE`` to
standardize every member on one file's responses (:func:`ready_for_scoring`), and state the stats they use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.errors import UserError
from rewardlab.rewards.base import Reward, is_batch_invariant

METHODS = ("mean", "wco", "uwo", "brme")


def member_name(member: Any) -> str:
    return str(getattr(member, "name", None) or type(member).__name__)


def member_stats(member: Any) -> tuple[list[float], list[float]] | None:
    """Per-column ``(means, stds)`` of a member from its manifest's ``normalization`` (None when it has none, or a
    k-output member has no per-output ``outputs`` stats). Unusable numbers raise UserError naming the member."""
    norm = getattr(member, "normalization", None)
    if not isinstance(norm, dict):
        return None
    k = getattr(member, "num_outputs", 1)
    k = k if isinstance(k, int) else 1
    cols = norm.get("outputs") if k > 1 else {"mean": [norm.get("mean")], "std": [norm.get("std")]}
    if not isinstance(cols, dict):
        return None
    means, stds = cols.get("mean"), cols.get("std")
    ok = (isinstance(means, list) and isinstance(stds, list) and len(means) == len(stds) == k
          and all(isinstance(v, (int, float)) and math.isfinite(v) for v in means + stds)
          and all(v > 0 for v in stds))
    if not ok:
        raise UserError(f"{member_name(member)}: its manifest's normalization {json.dumps(norm)[:200]} does not give "
                        f"{k} finite mean(s) and positive std(s); rerun `rewardlab calibrate`")
    return [float(v) for v in means], [float(v) for v in stds]


def brme_reward(means: torch.Tensor, stds: torch.Tensor, lam: float) -> torch.Tensor:
    """BRME's robust reward from the heads' Gaussians ``means``, ``stds`` ``[n, m]``: ``λ·μ_{i*} + (1 − λ)·min_i μ_i``
    with ``i* = argmin_i σ_i`` per item (the first such head on a tie). Returns ``[n]``."""
    nominal = means.gather(1, stds.argmin(1, keepdim=True))[:, 0]
    return lam * nominal + (1.0 - lam) * means.min(1).values


def head_gaussians(scores: torch.Tensor, widths: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per head (a member's ``widths[i]`` consecutive columns of ``scores [n, Σ widths]``): the mean and population
    std of its columns, ``([n, m], [n, m])``."""
    if sum(widths) != scores.shape[1]:
        raise ValueError(f"{scores.shape[1]} member columns for head widths {list(widths)}")
    groups = scores.split(list(widths), dim=1)
    return (torch.stack([g.mean(1) for g in groups], 1), torch.stack([g.std(1, unbiased=False) for g in groups], 1))


def aggregate(scores: torch.Tensor, method: str = "mean", uwo_lambda: float = 0.5,
              widths: Sequence[int] | None = None, brme_lambda: float | None = None) -> torch.Tensor:
    """Aggregate member scores ``[n, m]`` into ``[n]`` with ``method`` in mean / wco / uwo / brme (formulas above);
    brme reads the columns as heads of ``widths`` columns each, blended with ``brme_lambda``."""
    if method == "brme":
        if widths is None or brme_lambda is None:
            raise ValueError("brme needs the heads' widths and its λ")
        return brme_reward(*head_gaussians(scores, widths), brme_lambda)
    if method == "mean":
        return scores.mean(1)
    if method == "wco":
        return scores.min(1).values
    if method == "uwo":
        return scores.mean(1) - uwo_lambda * scores.var(1, unbiased=False)
    raise ValueError(f"aggregation must be one of {METHODS}, got {method!r}")


class EnsembleReward:
    """Ensemble of rewards; ``score`` returns the aggregated ``[n]``, ``score_members`` the ``[n, m]`` z's (one column
    per member output, named by ``member_names``), ``aggregate_members`` turns those into ``score``'s values.

    ``standardize=True`` needs (μ, σ) per member column: ``means``/``stds`` given, else the members' manifest stats
    when every member has them (``stats_from = "manifests"``), else :meth:`calibrate` on a reference set before
    scoring. ``standardize=False`` aggregates the raw member scores.
    """

    def __init__(self, members: Sequence[Reward], method: str = "mean", uwo_lambda: float = 0.5,
                 standardize: bool = True, means: Sequence[float] | None = None,
                 stds: Sequence[float] | None = None, names: Sequence[str] | None = None,
                 brme_lambda: float | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if method not in METHODS:
            raise ValueError(f"aggregation must be one of {METHODS}, got {method!r}")
        if method == "brme" and (brme_lambda is None or not 0.0 <= brme_lambda <= 1.0):
            raise ValueError(f"brme needs λ in [0, 1], got {brme_lambda}")
        self.members, self.method, self.uwo_lambda, self.standardize = list(members), method, uwo_lambda, standardize
        self.brme_lambda = brme_lambda
        self.names = list(names) if names is not None else [member_name(m) for m in self.members]
        self.name = f"ensemble:{method}"
        declared = [getattr(m, "num_outputs", None) for m in self.members]
        self.widths = [k if isinstance(k, int) and k >= 1 else 1 for k in declared]  # columns per member
        self.means = None if means is None else torch.tensor(list(means), dtype=torch.float32)
        self.stds = None if stds is None else torch.tensor(list(stds), dtype=torch.float32)
        self.stats_from: str | None = "given" if means is not None else None
        self.stats = [member_stats(m) for m in self.members] if standardize else []
        if standardize and means is None and all(s is not None for s in self.stats):
            self.means = torch.tensor([v for s in self.stats for v in s[0]], dtype=torch.float32)
            self.stds = torch.tensor([v for s in self.stats for v in s[1]], dtype=torch.float32)
            self.stats_from = "manifests"

    def missing_stats(self) -> list[str]:
        """Names of the members whose manifest has no normalization."""
        return [n for n, s in zip(self.names, self.stats, strict=True) if s is None]

    def describe_stats(self) -> list[str]:
        """One line per member: the (μ, σ) its columns are standardized with, and where they come from."""
        if not self.standardize:
            return ["ensemble members aggregated raw (standardize=False)"]
        if self.means is None or self.stds is None:
            return [f"ensemble members not standardized yet; missing stats: {', '.join(self.missing_stats())}"]
        lines, col = [], 0
        sources = set()
        for name, m in zip(self.names, self.members, strict=True):
            k = getattr(m, "num_outputs", 1)
            k = k if isinstance(k, int) and col + k <= self.means.numel() else 1
            stats = ", ".join(f"mean {float(self.means[j]):.6g} std {float(self.stds[j]):.6g}"
                              for j in range(col, col + k))
            where = self.stats_from
            if self.stats_from == "manifests":
                from rewardlab.rewards.calibrate import describe_source

                source = (getattr(m, "normalization", None) or {}).get("source")
                sources.add(json.dumps(source, sort_keys=True))
                where = f"its manifest: {describe_source(source)}"
            lines.append(f"ensemble member {name}: {stats} (from {where})")
            col += k
        if len(sources) > 1:
            lines.append("warning: the members' manifest stats come from different reference sets, so their z-scores "
                         "are not on one scale; pass --reference FILE to standardize all members on one set")
        return lines

    @property
    def batch_invariant(self) -> bool:
        return all(is_batch_invariant(m) for m in self.members)

    @property
    def member_names(self) -> list[str]:
        """One name per column of :meth:`score_members`: the member's name, ``NAME[j]`` for output j of a k-output
        member (rewards.base's declaration of a reward with members)."""
        return [n if k == 1 else f"{n}[{j}]" for n, k in zip(self.names, self.widths, strict=True) for j in range(k)]

    def aggregate_members(self, scores: torch.Tensor) -> torch.Tensor:
        """:meth:`score_members`' ``[n, m]`` → this ensemble's reward ``[n]`` (``score`` from one pass)."""
        if self.method == "brme":
            self.check_heads([m for m, k in zip(self.members, self.widths, strict=True) if k < 2])
        return aggregate(scores, self.method, self.uwo_lambda, self.widths, self.brme_lambda)

    def check_heads(self, single: Sequence[Any]) -> None:
        """BRME: refuse the members in ``single`` (one output: no spread to estimate a head's σ from)."""
        if single:
            names = [n for n, m in zip(self.names, self.members, strict=True) if any(m is x for x in single)]
            raise UserError(f"ensemble:brme: member(s) {', '.join(names)} give one output; a BRME head needs k >= 2 "
                            "outputs for its mean and std (a k-head checkpoint, `rewardlab train --num-outputs k`)")

    def raw_scores(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """Unstandardized member scores ``[n, m]``. A member returning ``[n, k]`` (a k-head model trained as a
        cheap ensemble, ``rewardlab train --num-outputs k``) contributes k columns from one forward pass."""
        cols = []
        for i, m in enumerate(self.members):
            s = m.score(prompts, responses).float()
            if s.dim() not in (1, 2):
                raise ValueError(f"ensemble member {getattr(m, 'name', m)!r} returned shape {tuple(s.shape)}")
            cols.append(s[:, None] if s.dim() == 1 else s)
            self.widths[i] = cols[-1].shape[1]  # what the member gives, whatever it declared
        return torch.cat(cols, 1)

    def calibrate(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
        """Measure each member's mean and (population) std on a reference set."""
        raw = self.raw_scores(prompts, responses)
        self.means, self.stds = raw.mean(0), raw.std(0, unbiased=False).clamp_min(1e-8)
        self.stats_from = f"a reference set of {len(responses)} responses"

    def score_members(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """Standardized member scores ``[n, m]``."""
        raw = self.raw_scores(prompts, responses)
        if not self.standardize:
            return raw
        if self.means is None or self.stds is None:
            raise RuntimeError("EnsembleReward(standardize=True) needs calibrate() on a reference set first (members "
                               f"without manifest normalization: {', '.join(self.missing_stats())})")
        if self.means.numel() != raw.shape[1]:
            raise ValueError(f"{raw.shape[1]} member columns but {self.means.numel()} standardization stats")
        return (raw - self.means) / self.stds

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        return self.aggregate_members(self.score_members(prompts, responses))


def ensemble_from_spec(spec: str, load: Callable[[str], Reward]) -> EnsembleReward:
    """``ensemble:METHOD[=LAMBDA]:SPEC1,SPEC2,...`` → :class:`EnsembleReward` (members resolved with ``load``).

    Examples: ``ensemble:wco:rm0,rm1,rm2``, ``ensemble:uwo=0.1:rm0,rm1``, ``ensemble:brme=0.8:kh0,kh1,kh2`` (BRME:
    each member a k-head checkpoint, λ required). Members are standardized with their manifests' normalization when
    all have one, else after a ``calibrate`` call on a reference set (see the module docstring).
    """
    try:
        head, method_part, members_part = spec.split(":", 2)
    except ValueError:
        raise UserError(f"reward spec {spec!r}: expected ensemble:METHOD[=LAMBDA]:SPEC1,SPEC2,...") from None
    method, _, lam = method_part.partition("=")
    if head != "ensemble" or method not in METHODS:
        raise UserError(f"reward spec {spec!r}: METHOD must be one of {', '.join(METHODS)}")
    try:
        value = float(lam) if lam else None
    except ValueError:
        raise UserError(f"reward spec {spec!r}: LAMBDA {lam!r} is not a number") from None
    if method == "brme" and (value is None or not 0.0 <= value <= 1.0):
        raise UserError(f"reward spec {spec!r}: brme needs its λ in [0, 1], ensemble:brme=λ:SPEC,... (r = λ·nominal "
                        "+ (1 − λ)·min over heads; 1 = the nominal head alone, 0 = the worst head)")
    members = [s for s in members_part.split(",") if s]
    if not members:
        raise UserError(f"reward spec {spec!r}: no member specs")
    lams = {"brme_lambda": value} if method == "brme" else {"uwo_lambda": 0.5 if value is None else value}
    ensemble = EnsembleReward([load(s) for s in members], method=method, names=members, **lams)
    if method == "brme":  # members that declare one output fail now, the others when first scored
        ensemble.check_heads([m for m in ensemble.members if getattr(m, "num_outputs", None) == 1])
    return ensemble


def ready_for_scoring(reward: Any, spec: str, reference: Path | None = None, flag: str = "--reference") -> list[str]:
    """Make an ensemble spec scoreable outside the optimize loops; returns the lines that state its stats.

    ``reference``: standardize every member on that data file's responses (:meth:`EnsembleReward.calibrate`). Else
    the members' manifest stats must be there (UserError naming the members without). A non-ensemble reward gets
    ``[]``; ``reference`` is refused for it."""
    if not isinstance(reward, EnsembleReward):
        if reference is not None:
            raise UserError(f"{flag} applies to ensemble specs only ({spec!r} is not one)")
        return []
    if reference is not None:
        from rewardlab.rewards.calibrate import rows_reference

        prompts, responses, _ = rows_reference(reference)
        reward.calibrate(prompts, responses)
        reward.stats_from = f"{len(responses)} responses of {reference}"
    elif reward.standardize and reward.means is None:
        raise UserError(f"{spec}: member(s) {', '.join(reward.missing_stats())} have no 'normalization' in their "
                        "manifest, needed to standardize members before aggregating; run `rewardlab calibrate DIR "
                        f"--data FILE` (or --prompts/--policy) on each, or pass {flag} FILE to standardize every "
                        "member on FILE's responses")
    return reward.describe_stats()
