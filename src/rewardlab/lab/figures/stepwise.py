"""Figure of the stepwise experiment (:mod:`rewardlab.lab.experiments.stepwise`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, band, plt, save
from rewardlab.lab.verdicts import Claim, caption


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    x = 100 * np.asarray(data["levels"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    titles = {"visible": f"mistakes visible in their step (v = {data['visibility']:g})",
              "silent": "silent mistakes (visible only in the final answer)"}
    for ax, world in zip(axes, ("visible", "silent")):
        d = data[world]
        band(ax, x, np.asarray(d["orm"]), "outcome RM", COLORS[0])
        prm = np.asarray(d["prm"])
        band(ax, x, np.repeat(prm[:, None], len(x), 1), "PRM (min over steps)", COLORS[1], "--")
        ax.axhline(float(np.mean(d["random"])), color="k", lw=0.8, ls=":", label="random pick")
        ax.axhline(float(np.mean(d["oracle"])), color="k", lw=0.8, label="oracle (any correct)")
        ax.set_xticks(x)
        ax.set_xlabel("outcome labels flipped (%)")
        ax.set_title(titles[world])
    axes[0].set_ylabel(f"best-of-{data['bon_n']} accuracy")
    axes[0].legend(fontsize=9)
    shown = [claims[k] for k in ("stepwise-prm-noisy", "stepwise-noise-drives-gap", "stepwise-silent-errors")
             if k in claims]
    return [(save(fig, out, "stepwise.png"),
             f"Best-of-{data['bon_n']} accuracy of an outcome RM (trained on final-answer labels, a fraction "
             f"flipped) and a PRM (trained on clean step labels, its score the minimum over {data['steps']} steps) on "
             "the same training solutions, against the fraction of flipped outcome labels (the PRM does not see them, "
             "so its line is flat). Line = mean over seeds, band = min–max; higher is better. " + caption(shown))]
