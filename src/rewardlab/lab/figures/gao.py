"""Figures of the Gao experiment (:mod:`rewardlab.lab.experiments.gao`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, plt, save
from rewardlab.lab.verdicts import Claim, caption
from rewardlab.optimize.fits import fit_bon, fit_rl


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    per_seed, n_pairs = data["per_seed"], data["n_pairs"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    for ax, kind, fit, title in ((axes[0], "bon", fit_bon, "best-of-n (n = 1 … 4096)"),
                                 (axes[1], "rl", fit_rl, "RL, policy gradient, no KL penalty")):
        for j, n in enumerate(n_pairs):
            d = np.mean([o[kind]["d"][j] for o in per_seed], 0)
            g = np.mean([o[kind]["gold"][j] for o in per_seed], 0)
            p = np.mean([o[kind]["proxy"][j] for o in per_seed], 0)
            ax.plot(d, g, "-", color=COLORS[j], lw=2, label=f"gold, {n} pairs")
            ax.plot(d, p, "--", color=COLORS[j], lw=1.2, alpha=0.8)
            f = fit(d, g)
            dd = np.linspace(1e-3, d.max(), 100)
            ax.plot(dd, f.predict(dd), ":", color=COLORS[j], lw=1.5)
        ax.set_xlabel("d = √KL(π ‖ π₀)")
        ax.set_title(title)
        ax.set_ylim(bottom=max(ax.get_ylim()[0], -3))
    axes[0].set_ylabel("gain over π₀ (π₀ std)")
    axes[0].legend(fontsize=9, title="solid gold · dashed proxy · dotted fit", title_fontsize=9)
    return [(save(fig, out, "gao.png"),
             "Gold (solid) and proxy (dashed) gain against d = √KL; colours = amount of preference data for the "
             "proxy; dotted = Gao et al.'s fitted form (BoN d(α−βd), RL d(α−β log d)) on the seed-mean curve. "
             "Over-optimization shows as gold bending down while the proxy still rises. The RL panel is clipped at "
             "−3. " + caption(list(claims.values())))]


def table(data: dict) -> str:
    """The HTML table shown above the figures in the report."""
    rows = []
    for j, n in enumerate(data["n_pairs"]):
        cells = []
        for kind in ("bon", "rl"):
            fits = [o[f"{kind}_fits"][j] for o in data["per_seed"]]
            for key in ("alpha", "beta", "r2"):
                vals = [f[key] for f in fits if f[key] is not None and f[key] == f[key]]
                cells.append(f"{sum(vals) / len(vals):.2f}" if vals else "n/a")
        rows.append(f"<tr><td>{n}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<p>Fitted Gao et al. forms per proxy data amount (mean over seeds of the per-seed least-squares fits).</p>"
            "<table><tr><th>proxy pairs</th><th>BoN α</th><th>BoN β</th><th>BoN R²</th><th>RL α</th><th>RL β</th>"
            "<th>RL R²</th></tr>" + "".join(rows) + "</table>")
