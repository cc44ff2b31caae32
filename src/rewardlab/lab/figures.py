"""Figures of the lab report: one function per figure, each reads an experiment's ``data`` and writes a PNG.

Every function returns ``[(filename, caption)]``; the caption says what to look at.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rewardlab.lab.experiments import two_groups  # noqa: E402
from rewardlab.optimize.fits import fit_bon, fit_rl  # noqa: E402

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.dpi": 100, "savefig.bbox": "tight"})
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _band(ax, x, ys: np.ndarray, label: str, color: str, style: str = "-") -> None:
    """Mean line over seeds (axis 0) with a min–max band."""
    ax.plot(x, ys.mean(0), style, color=color, label=label, lw=2)
    if ys.shape[0] > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=0.15, lw=0)


# --------------------------------------------------------------------------------------------------- Razin
def razin_figures(data: dict, out: Path) -> list[tuple[str, str]]:
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
    figs.append((_save(fig, out, "razin_correlations.png"),
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
        _band(ax, steps, ref, "highest-RV trained proxy (accuracy < 1)", COLORS[0])
        _band(ax, steps, curves[:, :, i_low], "perfect accuracy, low RV", COLORS[3])
        _band(ax, steps, curves[:, :, i_gold], "r* itself", COLORS[2], "--")
        for b in (data["early"], data["late"]):
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.set_title(f"RLOO k=2, β=0.05, lr={lr_:g}")
        ax.set_xlabel("policy-gradient steps")
    np.atleast_1d(axes)[0].set_ylabel("gold gain (π₀ std)")
    np.atleast_1d(axes)[0].legend(fontsize=9)
    figs.append((_save(fig, out, "razin_lowvar.png"),
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
    figs.append((_save(fig, out, "razin_per_prompt.png"),
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
    figs.append((_save(fig, out, "razin_policies.png"),
                 "Same RMs, two initial policies (bars = mean, dots = seeds). All three RMs order every pair "
                 "correctly. The threshold RM only resolves differences where policy B writes: compare it with r* "
                 "under π₀ and under B — the better teacher depends on the student."))
    return figs


# ----------------------------------------------------------------------------------------------------- Gao
def gao_figures(data: dict, out: Path) -> list[tuple[str, str]]:
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
    return [(_save(fig, out, "gao.png"),
             "Proxy (dashed) keeps rising while gold (solid) peaks and falls: over-optimization. Colours = amount of "
             "preference data for the proxy; dotted = Gao et al.'s fitted form (BoN d(α−βd), RL d(α−β log d)) on the "
             "seed-mean curve. More data ⇒ a later, higher gold peak. The RL panel is clipped at −3.")]


# --------------------------------------------------------------------------------------------------- Coste
def coste_figures(data: dict, out: Path) -> list[tuple[str, str]]:
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
    return [(_save(fig, out, "coste.png"),
             f"Final gold reward with {data['label_noise']:.0%} label noise: a single proxy (average of the "
             f"{data['members']} members used alone) vs their ensembles. Bars = mean over seeds, dots = seeds; "
             "higher is better.")]


# ----------------------------------------------------------------------------------------------------- PAR
def par_figures(data: dict, out: Path) -> list[tuple[str, str]]:
    per_seed = data["per_seed"]
    steps = np.maximum(per_seed[0]["steps"], 0.5)
    names = per_seed[0]["names"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for j, name in enumerate(names):
        _band(axes[0], steps, np.stack([o["gold"][:, j] for o in per_seed]), name, COLORS[j])
        _band(axes[1], steps, np.stack([o["d"][:, j] ** 2 for o in per_seed]), name, COLORS[j])
    for ax, lab in ((axes[0], "gold gain (π₀ std)"), (axes[1], "KL(π ‖ π₀)")):
        ax.set_xscale("log")
        ax.set_xlabel("policy-gradient steps")
        ax.set_ylabel(lab)
    axes[0].legend(fontsize=9)
    return [(_save(fig, out, "par.png"),
             "RL against the least-data proxy, long enough to reach high KL. Raw reward (blue) peaks then collapses as "
             "the policy finds the proxy's extreme answers; PAR (green) saturates and holds. Orange = raw reward "
             "shrunk to PAR's scale, a control for 'PAR is just a smaller reward'.")]


# ----------------------------------------------------------------------------------------------- transformer
def transformer_figures(data: dict, out: Path) -> list[tuple[str, str]]:
    per_seed = data["per_seed"]
    names = per_seed[0]["proxy_names"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    for j, n in enumerate(names):
        d = [r["sqrt_kl"] for r in per_seed[0]["bon"][n]]
        gold = np.array([[r["gold"] - o["bon"][n][0]["gold"] for r in o["bon"][n]] for o in per_seed])
        proxy = np.array([[r["proxy"] - o["bon"][n][0]["proxy"] for r in o["bon"][n]] for o in per_seed])
        _band(axes[0], d, gold, f"gold, proxy on {n}", COLORS[j])
        axes[0].plot(d, proxy.mean(0), "--", color=COLORS[j], lw=1.2, alpha=0.8)
    axes[0].set_xlabel("d = √KL (analytic BoN KL, n = 1 … N)")
    axes[0].set_ylabel("gain over π₀ (raw units)")
    axes[0].set_title("best-of-n on tiny-GPT-2 samples (unbiased estimator)")
    axes[0].legend(fontsize=9, title="solid gold · dashed proxy", title_fontsize=9)
    rl_names = list(per_seed[0]["rl"])
    for j, n in enumerate(rl_names):
        steps = per_seed[0]["rl"][n]["steps"]
        _band(axes[1], steps, np.array([o["rl"][n]["gold"] for o in per_seed]), n, COLORS[[2, 3, 0][j % 3]])
    axes[1].axvline(data["eval_every"], color="grey", ls=":", lw=1)
    axes[1].set_xlabel("RLOO steps (k=2, β=0.05)")
    axes[1].set_ylabel("gold gain")
    axes[1].set_title("RLOO on tiny GPT-2, each RM standardized under π₀")
    axes[1].legend(fontsize=9)
    return [(_save(fig, out, "transformer.png"),
             "The same questions with real generation. Left: best-of-n against BT-trained tiny-GPT-2 reward models "
             "(colour = training pairs); look at whether gold (solid) bends down while the proxy (dashed) climbs. "
             "Right: RLOO against r*, the perfectly accurate low-RV RM and the least-data proxy (mean over seeds, "
             "band = min–max); the dotted line is the early budget used in the claim.")]


FIGURES = {"razin": razin_figures, "gao": gao_figures, "coste": coste_figures, "par": par_figures,
           "transformer": transformer_figures, "two_groups": two_groups.figures}
