"""The `teachers` report: one table with every reward side by side (rank, tier, metrics with CIs, probe gains,
flags), the verdict and the rule, and one figure — gold gain against √KL for every reward (best-of-n on the shared
sample dashed, RL probe solid), the proxy on its own panel so a gold moving by 0.01 is not drawn flat next to a
proxy moving by 1.7."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from rewardlab.evaluate.plots import plotting, pyplot, save_figure
from rewardlab.evaluate.report import CSS
from rewardlab.io import write_text_atomic

COLUMNS = [("accuracy", "Accuracy (--data)"), ("on_policy_accuracy", "On-policy acc."),
           ("reward_variance", "Reward variance")]


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _with_ci(v: Any, ci: Any) -> str:
    s = _num(v)
    if ci and None not in ci:
        s += f" <small>[{_num(ci[0])}, {_num(ci[1])}]</small>"
    return s


def table_rows(doc: dict[str, Any]) -> list[dict[str, str]]:
    """One plain-text row per reward, best first (the terminal table and the HTML table share it)."""
    rows = []
    for r in doc["verdict"]["ranking"]:
        m, e = r["metrics"], doc["rewards"][r["reward"]]
        full = e["metrics"]
        bon = e.get("best_of_n")
        row = {"rank": str(r["rank"]) + ("=" if r["tied_with"] else ""), "reward": r["reward"], "tier": r["tier"]}
        for key, label in COLUMNS:
            ci = full.get(f"{key}_ci")
            row[label] = _num(m.get(key)) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci and None not in ci else "")
        if bon:
            ci = bon["gold_gain_at_m_ci"]
            row[f"BoN-{bon['n'][-1]} gold gain"] = f"{bon['gold_gain_at_m']:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
        if r["probe_gold_gain_mean"] is not None:
            ci = r["probe_gold_gain_ci"]
            row["RL probe gold gain"] = f"{r['probe_gold_gain_mean']:+.4f}" + (
                f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci and None not in ci else "")
        rows.append(row)
    empty = {k for k in rows[0] if all(r.get(k, "–").startswith("–") for r in rows)} if rows else set()
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


def _seed_mean(runs: list[dict[str, Any]], key: str) -> list[float]:
    """Change of ``key`` from step 0 at each evaluation, averaged over the probe seeds."""
    n_eval = min(len(r["evaluations"]) for r in runs)
    return [sum(r["evaluations"][t][key] - r["evaluations"][0][key] for r in runs) / len(runs)
            for t in range(n_eval)]


def plot_probes(doc: dict[str, Any], path: Path) -> bytes | None:
    """Left: gold gain vs √KL for every reward; right: proxy gain (in RV's standardized units) vs √KL."""
    rewards = doc["rewards"]
    if not any("best_of_n" in e or "rl_probe" in e for e in rewards.values()):
        return None
    plt = pyplot()
    fig, (ax_g, ax_p) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (spec, e) in enumerate(rewards.items()):
        c = colors[i % len(colors)]
        if bon := e.get("best_of_n"):
            d = [math.sqrt(k) for k in bon["kl_bound"]]
            ax_g.plot(d, bon["gold_gain"], "--o", color=c, ms=3, label=f"{spec} (best-of-n)")
            ax_p.plot(d, bon["proxy_gain"], "--o", color=c, ms=3)
        if runs := e.get("rl_probe"):
            d = [math.sqrt(max(k, 0.0)) for k in _seed_mean(runs, "kl")]
            ax_g.plot(d, _seed_mean(runs, "gold_mean"), "-s", color=c, label=f"{spec} (RL probe, {len(runs)} seeds)")
            ax_p.plot(d, _seed_mean(runs, "proxy_mean"), "-s", color=c)
    for ax, what in ((ax_g, "gold gain"), (ax_p, "proxy gain (standardized under π₀)")):
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_xlabel("√KL(π ‖ π₀)  (best-of-n: the bound)")
        ax.set_ylabel(what)
    ax_g.set_title("gold (the truth)")
    ax_p.set_title("proxy (what each reward believes)")
    ax_g.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def render_html(doc: dict[str, Any], figure: bytes | None) -> str:
    v = doc["verdict"]
    rows = table_rows(doc)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(r.get(c, '–'))}</td>" for c in cols) + "</tr>" for r in rows)
    flags = "".join(f"<li><b>{html.escape(r['reward'])}</b>: {html.escape(f)}</li>"
                    for r in v["ranking"] for f in r["flags"])
    agree = "".join(f"<tr><th>{html.escape(k)}</th><td>{_num(x)}</td></tr>" for k, x in v["agreement"].items())
    img = (f"<figure><img alt='teachers.png' src='data:image/png;base64,{base64.b64encode(figure).decode()}'>"
           "<figcaption>Gold and proxy gain against √KL for every reward: best-of-n on the shared sample (dashed, "
           "KL is the bound log n − (n−1)/n) and the RL probe (solid, mean over seeds).</figcaption></figure>"
           if figure else "")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rewardlab teachers</title><style>{CSS}"
            f"</style></head><body><h1>Which reward model is the better teacher for this policy?</h1>"
            f"<p class='note'><b>Verdict.</b> {html.escape(v['verdict'])}</p>"
            f"<p><b>Rule.</b> {html.escape(v['rule'])}.</p><div class='scroll'><table><tr>{head}</tr>{body}</table>"
            f"</div>" + (f"<h2>Flags</h2><ul>{flags}</ul>" if flags else "")
            + (f"<h2>Does each metric predict the realized gold gain? (Spearman across rewards)</h2>"
               f"<table class='kv'>{agree}</table>" if agree else "")
            + f"<div class='figs'>{img}</div><p>{doc['n_prompts']} prompts × {doc['sampling']['num_samples']} "
            f"samples, {doc['wall_time_s']} s.</p></body></html>")


def write_report(out: Path, doc: dict[str, Any]) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    with plotting(out / "teachers.png", out / "teachers.json"):
        figure = plot_probes(doc, out / "teachers.png")
    if figure is not None:
        paths["teachers.png"] = out / "teachers.png"
    write_text_atomic(out / "report.html", render_html(doc, figure))
    paths["report.html"] = out / "report.html"
    return paths
