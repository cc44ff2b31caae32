"""Figures of the PAR experiment (:mod:`rewardlab.lab.experiments.par`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, band, plt, save
from rewardlab.lab.verdicts import Claim, caption


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    per_seed = data["per_seed"]
    steps = np.maximum(per_seed[0]["steps"], 0.5)
    names = per_seed[0]["names"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for j, name in enumerate(names):
        band(axes[0], steps, np.stack([o["gold"][:, j] for o in per_seed]), name, COLORS[j])
        band(axes[1], steps, np.stack([o["d"][:, j] ** 2 for o in per_seed]), name, COLORS[j])
    for ax, lab in ((axes[0], "gold gain (π₀ std)"), (axes[1], "KL(π ‖ π₀)")):
        ax.set_xscale("log")
        ax.set_xlabel("policy-gradient steps")
        ax.set_ylabel(lab)
    axes[0].axhline(0, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=9)
    return [(save(fig, out, "par.png"),
             "RL against a linear proxy trained on 100 pairs, long enough to reach high KL: gold gain over π₀ (left; "
             "dotted line = π₀'s gold, below it = collapsed) and KL (right) of the raw proxy (blue), PAR-shaped "
             "(green) and the raw proxy shrunk to PAR's π₀ scale (orange, a control for 'PAR is just a smaller "
             "reward'); mean over seeds, band = min–max. " + caption(list(claims.values())))]
