"""The ``normalization`` entry of a reward model's manifest: reference statistics of its scores.

    μ = (1/N) Σ_i r_i,    σ = sqrt((1/N) Σ_i (r_i − μ)²)        (population std, as NormalizedReward and
                                                              EnsembleReward.calibrate use)

recorded as ``{"mean": μ, "std": σ, "n": N, "source": {...}}``; a k-output model also gets ``"outputs": {"mean":
[μ_j], "std": [σ_j]}`` per output column, and its scalar ``mean``/``std`` are those of the mean over outputs (what the
server serves as its one reward). Written by ``rewardlab calibrate`` (:mod:`rewardlab.rewards.calibrate`) and by
``rewardlab train`` on its eval split.
"""

from __future__ import annotations

from typing import Any

import torch

from rewardlab.errors import UserError


def normalization_record(scores: torch.Tensor, source: dict[str, Any], where: str) -> dict[str, Any]:
    """The manifest entry for reference scores ``[N]`` or ``[N, k]`` (formulas in the module docstring).

    Refuses (UserError naming ``where``) fewer than 2 scores, non-finite scores and a zero std, which cannot
    standardize anything."""
    s = scores.detach().double().cpu()
    cols = s[:, None] if s.dim() == 1 else s
    n = int(cols.shape[0])
    if n < 2:
        raise UserError(f"{where}: {n} reference response(s); at least 2 are needed for a standard deviation")
    if not torch.isfinite(cols).all():
        bad = int((~torch.isfinite(cols)).any(1).nonzero()[0, 0])
        raise UserError(f"{where}: reference response {bad} scores {cols[bad].tolist()} (not finite)")
    scalar = cols.mean(1)
    std = float(scalar.std(unbiased=False))
    col_std = cols.std(0, unbiased=False)
    if not std > 0 or not bool((col_std > 0).all()):
        raise UserError(f"{where}: all {n} reference responses score the same ({float(scalar[0]):.6g}); a zero "
                        "std cannot standardize — use more varied responses")
    out: dict[str, Any] = {"mean": float(scalar.mean()), "std": std, "n": n, "source": source}
    if cols.shape[1] > 1:
        out["outputs"] = {"mean": cols.mean(0).tolist(), "std": col_std.tolist()}
    return out
