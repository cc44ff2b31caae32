"""Figures and the settings table of the Razin experiment (:mod:`rewardlab.lab.experiments.razin`).

Captions say what is plotted and how to read it; the findings come from the claims (:func:`caption`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.lab.figures.style import COLORS, band, plt, save
from rewardlab.lab.verdicts import Claim, bootstrap_ci, caption

LABELS = {"rv": "reward variance (RV)", "on_acc": "on-policy accuracy",
          "off_acc": "off-policy accuracy (neutral pairs)"}


def _claims(claims: dict[str, Claim], *ids: str) -> list[Claim]:
    return [claims[i] for i in ids if i in claims]


def _pol(p: str) -> str:
    return "π₀" if p == "pi0" else p


def figures(data: dict, out: Path, claims: dict[str, Claim]) -> list[tuple[str, str]]:
    per_seed, names, n = data["per_seed"], data["names"], data["n_trained"]
    pol, method, lr, _ = data["primary"].split("|")
    figs = []

    # 1. The tested number per setting and seed, early and late.
    rows = data["corr_rows"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.4), sharey=True)
    for ax, budget in zip(axes, (data["early"], data["late"])):
        rb = [r for r in rows if r["steps"] == budget]
        x = np.arange(len(rb))
        for j, m in enumerate(("rv", "on_acc", "off_acc")):
            vals = np.array([r[f"spearman_{m}"] for r in rb], dtype=float)      # [settings, seeds]
            ax.bar(x + (j - 1) * 0.27, np.nanmean(vals, 1), 0.27, color=COLORS[j], label=f"ρ(gain, {LABELS[m]})")
            for s in range(vals.shape[1]):
                ax.scatter(x + (j - 1) * 0.27, vals[:, s], color="k", s=6, zorder=3)
        ax.set_xticks(x, [f"{_pol(r['policy'])}\n{r['method']}\nlr {r['lr']:g}" for r in rb], fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"after {budget} steps")
    axes[0].set_ylabel(f"Spearman ρ across the {n} trained proxies")
    axes[0].legend(fontsize=8)
    figs.append((save(fig, out, "razin_settings.png"),
                 "Spearman correlation, across the trained proxies, between the gold gain and each teacher metric "
                 "(bars = mean over seeds, dots = seeds) for every initial policy × optimizer × learning rate, after "
                 "the early (left) and the late (right) budget. The late claim tests, per seed, the mean over the "
                 "right panel's settings of ρ(RV) minus the larger of the two accuracy ρ's; the early claim is decided "
                 "on the independent family (next figure), the left panel is reported. "
                 + caption(_claims(claims, "razin-acc-late"))))

    # 1b. The independent family (razin-rv-early): gain vs each metric, early and late, every seed.
    fam = [o["independent"] for o in per_seed if "independent" in o]
    if fam:
        budgets = [str(b) for b in data.get("family_budgets", [])] or list(fam[0]["gain"])
        fig, axes = plt.subplots(len(budgets), 3, figsize=(15, 4.3 * len(budgets)), sharey="row", squeeze=False)
        for row, b in enumerate(budgets):
            for ax, m in zip(axes[row], LABELS):
                for s, o in enumerate(fam):
                    ax.scatter(o["metrics"][m], o["gain"][b], color=COLORS[s % 10], s=10)
                rho = np.nanmean([o["rho"][b][m] for o in fam])
                ax.set_title(f"mean Spearman ρ over seeds {rho:+.2f}", fontsize=9)
                ax.set_xlabel(LABELS[m])
            axes[row][0].set_ylabel(f"gold gain after {b} steps")
        fig.subplots_adjust(hspace=0.3)
        figs.append((save(fig, out, "razin_family.png"),
                     f"The independent family ({len(fam[0]['metrics']['rv'])} RMs per seed whose noise, steepness "
                     "where π writes and per-prompt offsets are drawn independently; one colour per seed): gold gain "
                     "under the exact policy gradient against RV, on-policy and off-policy accuracy under π, after the "
                     "early (top) and the late (bottom) budget. "
                     + caption(_claims(claims, "razin-rv-early"))))

    # 2. Scatter of one setting, early and late.
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharey="row")
    for row, budget in enumerate((data["early"], data["late"])):
        key = f"{pol}|{method}|{lr}|{budget}"
        for ax, m in zip(axes[row], LABELS):
            for s, o in enumerate(per_seed):
                ax.scatter(o["metrics"][pol][m][:n], o["gain"][key][:n], color=COLORS[s % 10], s=24,
                           label=f"seed {o.get('seed', s)}" if m == "rv" and row == 0 else None)
            ax.set_xlabel(f"{LABELS[m]} under {_pol(pol)}")
        axes[row][0].set_ylabel(f"gold gain after {budget} steps")
    axes[0][0].legend(fontsize=8)
    figs.append((save(fig, out, "razin_correlations.png"),
                 f"One setting ({_pol(pol)}, {method}, lr {lr}): gold gain of each trained proxy (one colour per "
                 "seed) against its RV, on-policy accuracy and off-policy accuracy, after the early (top) and the "
                 "late (bottom) budget. Within a seed, a metric that predicts the gain lines its dots up."))

    # 3. Low-variance RM vs the highest-RV proxy, along training.
    i_low, i_gold = names.index("perfect, low-RV"), names.index("gold r*")
    fig, axes = plt.subplots(1, len(data["lrs"]), figsize=(13, 4.2), sharey=True)
    for ax, lr_ in zip(np.atleast_1d(axes), data["lrs"]):
        key = f"pi0|rloo|{lr_:g}"
        steps = per_seed[0]["curves"][key]["steps"]
        curves = np.stack([np.asarray(o["curves"][key]["gain"]) for o in per_seed])   # [S, T, R]
        ref = np.stack([curves[s, :, i] for s, i in enumerate(data["reference_proxy"])])
        band(ax, steps, ref, "highest-RV trained proxy", COLORS[0])
        band(ax, steps, curves[:, :, i_low], "perfect accuracy, low RV", COLORS[3])
        band(ax, steps, curves[:, :, i_gold], "r* itself", COLORS[2], "--")
        for b in (data["early"], data["late"]):
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.set_title(f"from π₀, RLOO k=2, β=0.05, lr={lr_:g}")
        ax.set_xlabel("policy-gradient steps")
    np.atleast_1d(axes)[0].set_ylabel("gold gain (π₀ std)")
    np.atleast_1d(axes)[0].legend(fontsize=9)
    figs.append((save(fig, out, "razin_lowvar.png"),
                 "Gold gain during RL from π₀ (line = mean over seeds, band = min–max) under the trained proxy with "
                 "the highest RV, the perfectly accurate low-RV RM and r*; dotted lines mark the early and late "
                 "budgets. " + caption(_claims(claims, "razin-lowvar-slow"))))

    # 4. Per prompt (the primary setting).
    key = data["primary"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    gains = {"highest-RV proxy": np.concatenate([np.asarray(o["per_prompt_gain"][key])[i] for o, i in
                                                 zip(per_seed, data["reference_proxy"])]),
             "perfect, low-RV": np.concatenate([np.asarray(o["per_prompt_gain"][key])[i_low] for o in per_seed]),
             "r*": np.concatenate([np.asarray(o["per_prompt_gain"][key])[i_gold] for o in per_seed])}
    bins = np.linspace(min(v.min() for v in gains.values()), max(v.max() for v in gains.values()), 40)
    for j, (k, v) in enumerate(gains.items()):
        axes[0].hist(v, bins=bins, alpha=0.5, label=f"{k} (mean {v.mean():.2f})", color=COLORS[[0, 3, 2][j]])
    axes[0].set_xlabel(f"per-prompt gold gain after {data['early']} steps")
    axes[0].set_ylabel("prompts (all seeds)")
    axes[0].legend(fontsize=9)
    for j, k in enumerate(("highest-RV proxy", "perfect, low-RV")):
        idx = data["reference_proxy"] if j == 0 else [i_low] * len(per_seed)
        rvp = np.concatenate([np.asarray(o["metrics"]["pi0"]["rv_per_prompt"])[i] for o, i in zip(per_seed, idx)])
        axes[1].scatter(rvp, gains[k], s=10, color=COLORS[[0, 3][j]], label=k)
    axes[1].set_xscale("symlog", linthresh=0.01)
    axes[1].set_xlabel("per-prompt reward variance under π₀")
    axes[1].set_ylabel("per-prompt gold gain")
    axes[1].legend(fontsize=9)
    figs.append((save(fig, out, "razin_per_prompt.png"),
                 f"Per prompt ({_pol(pol)}, {method}, lr {lr}, {data['early']} steps; all seeds pooled). Left: "
                 f"histogram of per-prompt gold gains; the low-RV RM was shrunk on {data['lowvar_fraction']:.0%} of "
                 "the prompts. Right: per-prompt gain against the per-prompt RV the RM induces under π₀."))

    # 5. Policy dependence: threshold RM vs r*, and the focused family.
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.4))
    th = data["threshold_gap"]
    for j, p in enumerate(("pi0", "B")):
        v = np.asarray(th[p], dtype=float)
        axes[0].bar(j, v.mean(), 0.6, color=COLORS[j])
        axes[0].scatter(np.full(v.size, j), v, color="k", s=12, zorder=3)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set_xticks([0, 1], ["from π₀", "from B"])
    axes[0].set_ylabel(f"gain(threshold RM) − gain(r*), {data['early']} steps")
    axes[0].set_title("mean over optimizer × lr (bar = mean, dots = seeds)")
    fam = data["family"]
    for j, p in enumerate(("pi0", "B")):
        alt = "B" if p == "pi0" else "pi0"
        k = f"{p}|rloo|{data['lrs'][0]:g}|{data['early']}"
        for s, o in enumerate(per_seed):
            g = np.asarray(o["gain"][k])[fam]
            axes[1].scatter(np.asarray(o["metrics"][p]["rv"])[fam], g, color=COLORS[j], s=16,
                            label=f"from {_pol(p)}: RV under {_pol(p)}" if s == 0 else None)
            axes[1].scatter(np.asarray(o["metrics"][alt]["rv"])[fam], g, facecolor="none", edgecolor=COLORS[j], s=16,
                            label=f"from {_pol(p)}: RV under {_pol(alt)}" if s == 0 else None)
    axes[1].set_xlabel("RV of the focused RM")
    axes[1].set_ylabel(f"gold gain (RLOO, lr {data['lrs'][0]:g}, {data['early']} steps)")
    axes[1].legend(fontsize=8)
    figs.append((save(fig, out, "razin_policies.png"),
                 "Left: gold gain of the threshold RM (perfectly accurate, steep only above the mean gold level "
                 "of policy B's answers) minus that of r*, from each initial policy. Right: the focused family "
                 "w·band(π₀) + (1 − w)·band(B) (all perfectly accurate); each RM's gain from one policy plotted "
                 "against its RV under that policy (filled) and under the other policy (hollow). "
                 + caption(_claims(claims, "razin-policy-dependent", "razin-rv-policy-specific"))))
    return figs


def best_cell(per_metric: dict[str, list[float]]) -> tuple[str | None, tuple[float, float]]:
    """The metric with the highest mean ρ over seeds, if it is separated from the runner-up: the 95% bootstrap CI
    (over seeds) of the per-seed difference best − runner-up excludes 0. Returns (metric or None, CI)."""
    arrays = {m: np.asarray(v, dtype=float) for m, v in per_metric.items()}
    means = {m: float(np.nanmean(v)) if np.isfinite(v).any() else -np.inf for m, v in arrays.items()}
    best, second = sorted(means, key=means.get, reverse=True)[:2]
    diff = arrays[best] - arrays[second]
    lo, hi = bootstrap_ci(diff)
    return (best if lo > 0 else None), (lo, hi)


def table(data: dict) -> str:
    """The HTML table shown above the figures in the report."""
    rows = []
    for r in data["corr_rows"]:
        per_metric = {m: r[f"spearman_{m}"] for m in ("rv", "on_acc", "off_acc")}
        best, (lo, hi) = best_cell(per_metric)
        cells = []
        for m, v in per_metric.items():
            v = np.asarray(v, dtype=float)
            c = f"{np.nanmean(v):.2f}" if np.isfinite(v).any() else "n/a"
            cells.append(f"<b>{c}</b>" if m == best else c)
        rows.append(f"<tr><td>{_pol(r['policy'])}</td><td>{r['method']}</td><td>{r['lr']:g}</td><td>{r['steps']}</td>"
                    + "".join(f"<td>{c}</td>" for c in cells) + f"<td>[{lo:+.2f}, {hi:+.2f}]</td></tr>")
    return ("<p>Mean Spearman ρ(gold gain, metric) across the trained proxies, for every initial policy, optimizer, "
            "learning rate and budget. Bold: the best predictor, only where the 95% bootstrap CI over seeds of its "
            "per-seed difference to the runner-up (last column) excludes 0.</p>"
            "<table><tr><th>initial policy</th><th>optimizer</th><th>lr</th><th>steps</th><th>ρ(RV)</th>"
            "<th>ρ(on-policy acc)</th><th>ρ(off-policy acc, neutral pairs)</th><th>best − runner-up, 95% CI</th>"
            "</tr>" + "".join(rows) + "</table>")
