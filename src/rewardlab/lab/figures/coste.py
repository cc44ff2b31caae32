"""Figures of the Coste experiment (:mod:`rewardlab.lab.experiments.coste`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, band, plt, save
from rewardlab.lab.verdicts import Claim, caption

LABELS = {"mean": "mean", "wco": "WCO (min)", "uwo": "UWO"}


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    final = data["final"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=False)
    for ax, kind, title in ((axes[0], "bon", "best-of-n, largest n"), (axes[1], "rl", "RL, end of training")):
        keys = ["single", *data["aggregates"]]
        vals = np.array([final[kind][k] for k in keys])
        ax.bar(range(len(keys)), vals.mean(1), color=[COLORS[7]] + COLORS[:3])
        for s in range(vals.shape[1]):
            ax.scatter(range(len(keys)), vals[:, s], color="k", s=12, zorder=3)
        ax.set_xticks(range(len(keys)), ["single RM"] + [LABELS[a] for a in data["aggregates"]])
        ax.set_title(title)
        ax.axhline(0, color="k", lw=0.8)
    axes[0].set_ylabel("final gold gain (π₀ std)")
    main = [claims[k] for k in ("coste-conservative-bon", "coste-conservative-rl", "coste-vs-mean-bon",
                                "coste-vs-mean-rl", "coste-mean") if k in claims]
    out_list = [(save(fig, out, "coste.png"),
                 f"Final gold reward with {data['label_noise']:.0%} label noise: a single proxy (average of the "
                 f"{data['members']} members used alone) vs their ensembles. Bars = mean over seeds, dots = seeds; "
                 "higher is better. " + caption(main))]
    levels = data.get("noise_levels") or []
    if len(levels) >= 2:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        x = 100 * np.asarray(levels)
        for ax, kind, title in ((axes[0], "bon", "best-of-n, largest n"), (axes[1], "rl", "RL, end of training")):
            for j, a in enumerate(data["aggregates"]):
                band(ax, x, np.asarray(data["benefit"][kind][a]), LABELS[a], COLORS[j])
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(x)
            ax.set_xlabel("label noise (% of labels flipped)")
            ax.set_title(title)
        axes[0].set_ylabel("gold(ensemble) − gold(single RM)")
        axes[0].legend(fontsize=9)
        noise = [claims[k] for k in ("coste-noise-bon", "coste-noise-rl") if k in claims]
        out_list.append((save(fig, out, "coste_noise.png"),
                         "Benefit of each ensemble over a single RM (final gold, π₀ std) against the fraction of "
                         "flipped preference labels; the same pairs are relabelled at each level and the members "
                         "retrained. Line = mean over seeds, band = min–max; above 0 = the ensemble ends with more "
                         "gold. " + caption(noise)))
    return out_list
