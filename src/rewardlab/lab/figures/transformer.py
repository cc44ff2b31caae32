"""Figures of the transformer experiment (:mod:`rewardlab.lab.experiments.transformer`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, band, plt, save
from rewardlab.lab.verdicts import Claim, caption


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    per_seed = data["per_seed"]
    names = per_seed[0]["proxy_names"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.4))
    for j, n in enumerate(names):
        d = [r["sqrt_kl"] for r in per_seed[0]["bon"][n]]
        gold = np.array([[r["gold"] - o["bon"][n][0]["gold"] for r in o["bon"][n]] for o in per_seed])
        proxy = np.array([[r["proxy"] - o["bon"][n][0]["proxy"] for r in o["bon"][n]] for o in per_seed])
        band(axes[0], d, gold, f"gold, proxy on {n}", COLORS[j])
        axes[0].plot(d, proxy.mean(0), "--", color=COLORS[j], lw=1.2, alpha=0.8)
    axes[0].set_xlabel("d = √KL (BoN KL bound log n − (n−1)/n, n = 1 … N)")
    axes[0].set_ylabel("gain over π₀ (raw units)")
    axes[0].set_title("best-of-n on tiny-GPT-2 samples (unbiased estimator)")
    axes[0].legend(fontsize=9, title="solid gold · dashed proxy", title_fontsize=9)
    rl_names = list(per_seed[0]["rl"])
    for j, n in enumerate(rl_names):
        steps = per_seed[0]["rl"][n]["steps"]
        for ax, key in ((axes[1], "gold"), (axes[2], "kl")):
            band(ax, steps, np.array([o["rl"][n][key] for o in per_seed]), n, COLORS[[2, 3, 0][j % 3]])
    for ax, label in ((axes[1], "gold gain"), (axes[2], "KL(π ‖ π₀) (nats)")):
        ax.axvline(data["early_step"], color="grey", ls=":", lw=1)
        ax.set_xlabel(f"RLOO steps (k=2, β=0.05, {data['optimizer']})")
        ax.set_ylabel(label)
        ax.legend(fontsize=9)
    axes[1].set_title("RLOO on tiny GPT-2, each RM standardized under π₀")
    axes[2].set_title("distance from π₀ during RLOO")
    return [(save(fig, out, "transformer.png"),
             "The same questions with real generation. Left: best-of-n against BT-trained tiny-GPT-2 reward models "
             "(colour = training pairs): gold (solid) and proxy (dashed) gain over π₀ against √KL; a gold curve "
             "that bends down while its proxy climbs is over-optimization. Middle and right: gold gain and KL(π‖π₀) "
             "during RLOO against r*, the perfectly accurate low-RV RM and the least-data proxy (mean over seeds, "
             "band = min–max); the dotted line is the early budget of the claim, and the right panel shows how far "
             "each run has moved from π₀ by then. " + caption(list(claims.values())))]
