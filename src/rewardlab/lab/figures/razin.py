"""Figures of the Razin experiment (:mod:`rewardlab.lab.experiments.razin`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, band, plt, save
from rewardlab.lab.verdicts import Claim


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    per_seed, names, n = data["per_seed"], data["names"], data["n_trained"]
    primary = data["primary"]
    pol, method, lr, budget = primary.split("|")
    figs = []

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), sharey=True)
    labels = {"rv": "reward variance (RV) under π₀", "on_acc": "on-policy accuracy", "off_acc": "off-policy accuracy"}
    row = next(r for r in data["corr_rows"] if f"{r['policy']}|{r['method']}|{r['lr']:g}|{r['steps']}" == primary)
    for ax, m in zip(axes, labels):
        for s, o in enumerate(per_seed):
            ax.scatter(o["metrics"][pol][m][:n], o["gain"][primary][:n], color=COLORS[s % 10], s=28,
                       label=f"seed {s}" if m == "rv" else None)
            ax.scatter(o["metrics"][pol][m][n:], o["gain"][primary][n:], color=COLORS[s % 10], marker="*", s=140,
                       edgecolor="k", lw=0.5)
        rho = np.nanmean(row[f"spearman_{m}"])
        ax.set_title(f"{labels[m]}\nSpearman ρ = {rho:.2f} (mean over seeds)")
        ax.set_xlabel(labels[m])
    axes[0].set_ylabel(f"gold gain after {budget} steps (π₀ std)")
    axes[0].legend(fontsize=9)
    figs.append((save(fig, out, "razin_correlations.png"),
                 f"Gold-reward gain after {budget} RLOO steps (k=2, lr {lr}) from π₀ against three ways to rate each "
                 f"trained proxy (dots, one colour per seed); stars are the constructed RMs (r*, perfect low-RV, "
                 f"threshold), not used in ρ. Look at the slope: the better the metric, the tighter the dots line up."))

    i_low, i_gold = names.index("perfect, low-RV"), names.index("gold r*")
    fig, axes = plt.subplots(1, len(data["lrs"]), figsize=(13, 4.2), sharey=True)
    for ax, lr_ in zip(np.atleast_1d(axes), data["lrs"]):
        key = f"pi0|rloo|{lr_:g}"
        steps = per_seed[0]["curves"][key]["steps"]
        curves = np.stack([o["curves"][key]["gain"] for o in per_seed])   # [S, T, R]
        ref = np.stack([curves[s, :, i] for s, i in enumerate(data["reference_proxy"])])
        band(ax, steps, ref, "highest-RV trained proxy (accuracy < 1)", COLORS[0])
        band(ax, steps, curves[:, :, i_low], "perfect accuracy, low RV", COLORS[3])
        band(ax, steps, curves[:, :, i_gold], "r* itself", COLORS[2], "--")
        for b in (data["early"], data["late"]):
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.set_title(f"RLOO k=2, β=0.05, lr={lr_:g}")
        ax.set_xlabel("policy-gradient steps")
    np.atleast_1d(axes)[0].set_ylabel("gold gain (π₀ std)")
    np.atleast_1d(axes)[0].legend(fontsize=9)
    figs.append((save(fig, out, "razin_lowvar.png"),
                 "Gold gain during RL from π₀ (mean over seeds, band = min–max). The perfectly accurate but "
                 "low-variance RM (red) starts slowly; whether the imperfect high-variance proxy (blue) stays "
                 "ahead depends on the budget and learning rate — compare the two dotted budgets in both panels."))

    key = primary
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    gains = {"highest-RV proxy": np.concatenate([o["per_prompt_gain"][key][i] for o, i in
                                                 zip(per_seed, data["reference_proxy"])]),
             "perfect, low-RV": np.concatenate([o["per_prompt_gain"][key][i_low] for o in per_seed]),
             "r*": np.concatenate([o["per_prompt_gain"][key][i_gold] for o in per_seed])}
    bins = np.linspace(min(v.min() for v in gains.values()), max(v.max() for v in gains.values()), 40)
    for j, (k, v) in enumerate(gains.items()):
        axes[0].hist(v, bins=bins, alpha=0.5, label=f"{k} (mean {v.mean():.2f})", color=COLORS[[0, 3, 2][j]])
    axes[0].set_xlabel(f"per-prompt gold gain after {budget} steps")
    axes[0].set_ylabel("prompts (all seeds)")
    axes[0].legend(fontsize=9)
    rvp = {"highest-RV proxy": np.concatenate([o["metrics"]["pi0"]["rv_per_prompt"][i] for o, i in
                                               zip(per_seed, data["reference_proxy"])]),
           "perfect, low-RV": np.concatenate([o["metrics"]["pi0"]["rv_per_prompt"][i_low] for o in per_seed])}
    axes[1].scatter(rvp["highest-RV proxy"], gains["highest-RV proxy"], s=10, color=COLORS[0], label="highest-RV proxy")
    axes[1].scatter(rvp["perfect, low-RV"], gains["perfect, low-RV"], s=10, color=COLORS[3], label="perfect, low-RV")
    axes[1].set_xscale("symlog", linthresh=0.01)
    axes[1].set_xlabel("per-prompt reward variance under π₀")
    axes[1].set_ylabel("per-prompt gold gain")
    axes[1].legend(fontsize=9)
    figs.append((save(fig, out, "razin_per_prompt.png"),
                 f"Per prompt, not just the mean: the low-RV RM was shrunk on {data['lowvar_fraction']:.0%} of "
                 "prompts; those barely move (the spike near 0) while the rest move as fast as under r*. Right: "
                 "per-prompt gain grows with the per-prompt RV the RM induces."))

    show = [("r*", i_gold), ("threshold RM", names.index("perfect, threshold")), ("perfect, low-RV", i_low)]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.38
    for j, p in enumerate(("pi0", "B")):
        k = f"{p}|{method}|{lr}|{budget}"
        vals = np.array([[o["gain"][k][i] for o in per_seed] for _, i in show])
        x = np.arange(len(show)) + (j - 0.5) * width
        ax.bar(x, vals.mean(1), width, label=f"initial policy {'π₀' if p == 'pi0' else 'B'}", color=COLORS[j])
        for s in range(vals.shape[1]):
            ax.scatter(x, vals[:, s], color="k", s=10, zorder=3)
    ax.set_xticks(np.arange(len(show)), [s for s, _ in show])
    ax.set_ylabel(f"gold gain after {budget} steps")
    ax.legend()
    figs.append((save(fig, out, "razin_policies.png"),
                 "Same RMs, two initial policies (bars = mean, dots = seeds). All three RMs order every pair "
                 "correctly. The threshold RM only resolves differences where policy B writes: compare it with r* "
                 "under π₀ and under B — the better teacher depends on the student."))
    return figs


def table(data: dict) -> str:
    """The HTML table shown above the figures in the report."""
    rows = []
    for r in data["corr_rows"]:
        cells = []
        for m in ("rv", "on_acc", "off_acc"):
            vals = [v for v in r[f"spearman_{m}"] if v == v]
            cells.append(f"{sum(vals) / len(vals):.2f}" if vals else "n/a")
        best = max(range(3), key=lambda i: float(cells[i]) if cells[i] != "n/a" else -9)
        cells = [f"<b>{c}</b>" if i == best else c for i, c in enumerate(cells)]
        pol = "π₀" if r["policy"] == "pi0" else "B"
        rows.append(f"<tr><td>{pol}</td><td>{r['method']}</td><td>{r['lr']:g}</td><td>{r['steps']}</td>"
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<p>Where the finding holds and where it flips: mean Spearman ρ(gold gain, metric) across the trained "
            "proxies, for every initial policy, optimizer, learning rate and budget (best predictor in bold).</p>"
            "<table><tr><th>initial policy</th><th>optimizer</th><th>lr</th><th>steps</th><th>ρ(RV)</th>"
            "<th>ρ(on-policy acc)</th><th>ρ(off-policy acc)</th></tr>" + "".join(rows) + "</table>")
