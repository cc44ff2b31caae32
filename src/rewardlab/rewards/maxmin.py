"""MaxMin-RLHF's worst-group reward (Chakraborty et al. 2024, "MaxMin-RLHF: Alignment with Diverse Human
Preferences", Algorithm 2) as a reward spec: ``maxmin[=raw]:SPEC,SPEC,...``.

The paper's objective over groups k = 1..K with rewards ``r_k`` is ``max_π min_k F_k(π)``,
``F_k(π) = E_{x, y∼π}[r_k(x, y)]``; at each policy step it picks the group with the lowest expected reward,
``k* = argmin_k F_k(π_t)``, and takes a PPO step on ``r_{k*}``. Here ``F_k`` is estimated on the batch a ``score``
call gets — in the optimize loops, the step's samples — so for items i = 1..n::

    z_ik = (r_k(x_i, y_i) − μ_k) / σ_k            (μ_k, σ_k: group k's reward on π₀'s samples, see below)
    k*   = argmin_k (1/n) Σ_i z_ik                (the worst group of this batch: a batch-level min of group means)
    score(x_i, y_i) = z_ik*                       so  mean_i score = min_k mean_i z_ik

This is *not* the per-item ``min_k r_k(x_i, y_i)`` (``micro:DIR:min``, ``ensemble:wco``): one group is chosen for the
whole batch, from the group means. The reward therefore declares ``batch_invariant = False``.

Groups: each member spec gives one group per output — a scalar reward one, a k-output reward (a k-head RM, an
ArmoRM) k, and a mixture checkpoint (``micro:DIR``, from ``rewardlab mixture-train``, MiCRo or ``--em``) one per
head. Scale: BT rewards are identified only up to a shift (and their scales differ by group), so comparing raw group
means would pick whichever head happens to sit lowest. By default each group is standardized on samples of the
initial policy (:meth:`MaxMinReward.calibrate`, which every optimize loop calls with π₀'s samples), so ``z_k`` is
group k's improvement over π₀ in π₀-standard deviations and the min compares like with like. ``maxmin=raw:`` uses
the raw rewards (for gold rewards that share a scale, e.g. per-group gold functions tracked with ``--gold``).

After each call, :attr:`MaxMinReward.batch_metrics` holds ``group_<j>`` (each group's batch mean, in the units
scored) and ``worst_group`` (k*); the optimize loops log them in ``metrics.jsonl`` (train rows: the proxy's; eval
rows: ``proxy_group_<j>`` and, with a ``maxmin`` gold, ``gold_group_<j>``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.errors import UserError
from rewardlab.rewards.base import Reward


def worst_group(z: torch.Tensor) -> tuple[int, torch.Tensor]:
    """``(k*, group means)`` for group rewards ``z [n, K]``: ``k* = argmin_k mean_i z_ik`` (ties: the lower k)."""
    means = z.float().mean(0)
    return int(means.argmin()), means


class MaxMinReward:
    """The worst group's reward over ``members`` (see the module docstring). ``standardize``: z-score each group
    with the stats of the last :meth:`calibrate` call (required before scoring); False: raw rewards."""

    batch_invariant = False
    num_outputs = 1

    def __init__(self, members: Sequence[Reward], names: Sequence[str] | None = None, standardize: bool = True):
        if not members:
            raise ValueError("MaxMinReward needs at least one member")
        self.members, self.standardize = list(members), standardize
        self.member_names = list(names) if names is not None else [f"member_{i}" for i in range(len(members))]
        self.means: torch.Tensor | None = None
        self.stds: torch.Tensor | None = None
        self.group_names: list[str] | None = None
        self.batch_metrics: dict[str, Any] = {}
        self.name = "maxmin"

    def group_scores(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """Every group's raw reward ``[n, K]``: members' outputs side by side (a mixture's heads, a k-output
        reward's columns, a scalar reward's one)."""
        cols, names = [], []
        for member, name in zip(self.members, self.member_names):
            heads = getattr(member, "score_heads", None)
            r = (heads(prompts, responses) if callable(heads) and getattr(member, "aggregate", None) == "router"
                 else member.score(prompts, responses)).float().cpu()
            r = r[:, None] if r.dim() == 1 else r
            cols.append(r)
            names += [name] if r.shape[1] == 1 else [f"{name}[{j}]" for j in range(r.shape[1])]
        self.group_names = names
        if len(names) < 2:
            raise UserError(f"maxmin: {names[0]} gives one group; the worst of one group is that reward (name two "
                            "or more reward specs, or a mixture / k-output reward)")
        return torch.cat(cols, 1)

    def calibrate(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
        """Each group's mean and (population) std on these samples — the initial policy's, in the optimize loops (kept
        but unused by ``raw``)."""
        for m in self.members:
            fn = getattr(m, "calibrate", None)
            if callable(fn):
                fn(prompts, responses)
        r = self.group_scores(prompts, responses)
        self.means, self.stds = r.mean(0), r.std(0, unbiased=False)
        if self.standardize and (self.stds <= 1e-8).any():
            flat = [n for n, s in zip(self.group_names or [], self.stds.tolist()) if s <= 1e-8]
            raise UserError(f"maxmin: group(s) {', '.join(flat)} give the same reward to every initial-policy sample; "
                            "they cannot be standardized (use maxmin=raw: for rewards on one scale)")

    def group_values(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """``z [n, K]``: the groups' rewards, standardized unless ``raw``."""
        r = self.group_scores(prompts, responses)
        if not self.standardize:
            return r
        if self.means is None or self.stds is None:
            raise UserError("maxmin: the groups are standardized on the initial policy's samples, and none were given "
                            "(the optimize loops give them); use maxmin=raw: to score raw rewards")
        return (r - self.means) / self.stds

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return torch.zeros(0)
        z = self.group_values(prompts, responses)
        k, means = worst_group(z)
        self.batch_metrics = {**{f"group_{j}": float(v) for j, v in enumerate(means)}, "worst_group": k}
        return z[:, k]


def maxmin_from_spec(spec: str, load: Callable[[str], Reward]) -> MaxMinReward:
    """``maxmin[=raw]:SPEC1,SPEC2,...`` → :class:`MaxMinReward` (members resolved with ``load``). Examples:
    ``maxmin:micro:runs/mix`` (the heads of a mixture), ``maxmin:runs/rm_a,runs/rm_b``,
    ``maxmin=raw:python:gold:group_a,python:gold:group_b``."""
    head, _, members_part = spec.partition(":")
    mode = head.partition("=")[2]
    if head.partition("=")[0] != "maxmin" or mode not in ("", "raw") or not members_part:
        raise UserError(f"reward spec {spec!r}: expected maxmin[=raw]:SPEC1,SPEC2,...")
    members = [s for s in members_part.split(",") if s]
    return MaxMinReward([load(s) for s in members], names=members, standardize=mode != "raw")
