"""Figures of the two-groups experiment (:mod:`rewardlab.lab.experiments.two_groups`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.experiments.two_groups import GROUPS
from rewardlab.lab.figures.style import plt, save
from rewardlab.lab.verdicts import Claim, caption


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    """Per-group accuracy of each reward and per-group gold gain of each policy (bars: mean over seeds, ticks:
    min–max). Returns ``[(filename, caption)]`` like :mod:`rewardlab.lab.figures`."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, key, ylabel in ((axes[0], "accuracy", "held-out accuracy vs the group's gold"),
                            (axes[1], "gold_gain", "gold gain of the optimized policy (π₀ std)")):
        methods = list(data[key])
        width = 0.8 / len(methods)
        for m, name in enumerate(methods):
            vals = [np.asarray(data[key][name][g], dtype=float) for g in GROUPS]
            x = np.arange(len(GROUPS)) + (m - (len(methods) - 1) / 2) * width
            mean = np.array([v.mean() for v in vals])
            err = np.array([[mean[i] - v.min(), v.max() - mean[i]] for i, v in enumerate(vals)]).T
            ax.bar(x, mean, width, yerr=err, label=name, capsize=3)
        ax.set_xticks(range(len(GROUPS)), [f"group {g}" for g in GROUPS])
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    axes[0].axhline(0.5, color="k", lw=0.8, ls=":")
    axes[1].axhline(0.0, color="k", lw=0.8, ls=":")
    return [(save(fig, Path(out), "two_groups.png"),
             "Left: held-out accuracy for each annotator group (A = majority) of one BT RM on pooled labels, the "
             "mixture of BT heads (routed by context, or by a few labelled pairs), and per-group oracles (dotted "
             "line = chance). Right: each group's gold gain after RLHF on the single RM and MaxMin over the "
             "mixture's heads. Bars = mean over seeds, ticks = min–max. "
             + caption([claims[k] for k in ("two-groups-mixture", "two-groups-maxmin") if k in claims]))]
