"""Figures of the Coste experiment (:mod:`rewardlab.lab.experiments.coste`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, plt, save
from rewardlab.lab.verdicts import Claim, caption


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    final = data["final"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=False)
    for ax, kind, title in ((axes[0], "bon", "best-of-n, largest n"), (axes[1], "rl", "RL, end of training")):
        keys = ["single", *data["aggregates"]]
        vals = np.array([final[kind][k] for k in keys])
        ax.bar(range(len(keys)), vals.mean(1), color=[COLORS[7]] + COLORS[:3])
        for s in range(vals.shape[1]):
            ax.scatter(range(len(keys)), vals[:, s], color="k", s=12, zorder=3)
        ax.set_xticks(range(len(keys)), ["single RM", "mean", "WCO (min)", "UWO"])
        ax.set_title(title)
        ax.axhline(0, color="k", lw=0.8)
    axes[0].set_ylabel("final gold gain (π₀ std)")
    return [(save(fig, out, "coste.png"),
             f"Final gold reward with {data['label_noise']:.0%} label noise: a single proxy (average of the "
             f"{data['members']} members used alone) vs their ensembles. Bars = mean over seeds, dots = seeds; "
             "higher is better. " + caption([c for c in claims.values()]))]
