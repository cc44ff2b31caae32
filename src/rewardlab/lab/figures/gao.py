"""Figures of the Gao experiment (:mod:`rewardlab.lab.experiments.gao`)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from rewardlab.lab.experiments.gao import FAILS
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
            for c in data["fit_checks"][kind]:  # observed peak of each seed's curve (only curves that turn)
                if c[j]["peaked"]:
                    ax.axvline(c[j]["d_obs"], ymin=0, ymax=0.04, color=COLORS[j], lw=2)
        ax.set_xlabel("d = √KL(π ‖ π₀)")
        ax.set_title(title)
        ax.set_ylim(bottom=max(ax.get_ylim()[0], -3))
    axes[0].set_ylabel("gain over π₀ (π₀ std)")
    axes[0].legend(fontsize=9, title="solid gold · dashed proxy · dotted fit", title_fontsize=9)
    keys = ("gao-overopt-bon", "gao-overopt-rl", "gao-data-bon", "gao-data-rl", "gao-later-peak", "gao-forms")
    return [(save(fig, out, "gao.png"),
             "Gold (solid) and proxy (dashed) gain against d = √KL, mean over seeds; colours = amount of preference "
             "data for the proxy; dotted = Gao et al.'s form (BoN d(α−βd), RL d(α−β log d)) fitted to the seed-mean "
             "curve; ticks on the x axis = observed gold peaks of single seeds' curves that turn. The verdicts use "
             "the per-seed curves and fits (table above). The RL panel is clipped at −3. "
             + caption([claims[k] for k in keys if k in claims]))]


def table(data: dict) -> str:
    """The HTML table shown above the figures: per form and data amount, the per-seed fits that have enough points,
    their medians, and how many pass Gao's form (R², α > 0, β > 0, peak), with the failed checks flagged."""
    rule = data["fit_rule"]
    rows = []
    for kind, name in (("bon", "BoN d(α−βd)"), ("rl", "RL d(α−β log d)")):
        for j, n in enumerate(data["n_pairs"]):
            checks = [cs[j] for cs in data["fit_checks"][kind]]
            fits = [o[f"{kind}_fits"][j] for o in data["per_seed"]]
            used = [(f, c) for f, c in zip(fits, checks) if "points" not in c["fails"]]

            def med(values: list) -> str:
                v = [x for x in values if x is not None and np.isfinite(x)]
                return f"{np.median(v):.2f}" if v else "n/a"

            fails = {k: sum(k in c["fails"] for _, c in used) for k in FAILS if k != "points"}
            flag = ", ".join(f"{FAILS[k]}: {v}" for k, v in fails.items() if v)
            cells = [name, str(n), f"{len(used)}/{len(fits)}", med([f["alpha"] for f, _ in used]),
                     med([f["beta"] for f, _ in used]), med([f["r2"] for f, _ in used]),
                     med([c["d_fit"] for _, c in used]), med([c["d_obs"] for _, c in used]),
                     f"{sum(c['peaked'] for _, c in used)}", f"{sum(not c['fails'] for _, c in used)}/{len(used)}",
                     ("⚠ " + escape(flag)) if flag else "—"]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<p>Gao et al.'s forms fitted to each seed's curve (medians over seeds). Only fits with ≥ "
            f"{rule['min_points']} distinct d > 0 are shown and counted. A fit passes when R² ≥ {rule['min_r2']:g}, "
            f"α > 0, β > 0 and its peak d* lies within ×/÷{rule['peak_factor']:g} of the observed argmax d (inside the "
            "measured range if the curve turns there); ⚠ lists the failed checks.</p>"
            "<table><tr><th>form</th><th>proxy pairs</th><th>fits shown</th><th>α</th><th>β</th><th>R²</th>"
            "<th>fitted d*</th><th>observed argmax d</th><th>curves that turn</th><th>pass</th><th>failed checks"
            "</th></tr>" + "".join(rows) + "</table>")
