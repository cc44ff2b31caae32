"""The PRM teacher report: ``metrics.json``, ``bon_by_aggregation.png``, ``report.html`` and ``report.md`` from the
summary of ``rewardlab eval-prm`` (:mod:`rewardlab.evaluate.prm_cli`).

Same format as the reward-model teacher report (:mod:`rewardlab.evaluate.report`: its CSS, cards and key-value
tables, the PNG embedded as base64; :mod:`rewardlab.evaluate.plots`: numbers on disk before any plot), one section
per data file:

- **ProcessBench** (Zheng et al. 2024): accuracy on erroneous solutions (the exact first-error index), on all-correct
  solutions, and their harmonic mean F1; with several files, ``mean F1`` over them (ProcessBench's overall score);
- **step-level F1** of the "wrong step" and of the "correct step" class (precision, recall, F1, accuracy);
- **best-of-n accuracy per aggregation** (min / last / product / mean of the step rewards; who uses which:
  :mod:`rewardlab.rewards.prm`) with the oracle (some candidate correct) and random-pick bounds.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from rewardlab.evaluate.plots import plotting
from rewardlab.evaluate.report import CSS, _card, _fmt, _kv_table
from rewardlab.rewards.prm import AGGREGATIONS

BOUNDS = ("oracle", "random")


def _md(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _bon_rows(bon: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m, bon.get(m)) for m in (*AGGREGATIONS, *BOUNDS)]


def render_markdown(summary: dict[str, Any]) -> str:
    """The report as markdown: one table per metric family, a row per data file."""
    files = summary["files"]
    out = [f"# PRM teacher report: {summary['model']}", "",
           f"separator {summary['separator']!r}, max length {summary['max_length']}, threshold "
           f"{summary.get('threshold', 0.5):g}", ""]
    pb = {n: r["processbench"] for n, r in files.items() if "processbench" in r}
    if pb:
        out += ["## ProcessBench", "", "| data | error acc. | correct acc. | F1 | erroneous | all-correct |",
                "|---|---|---|---|---|---|"]
        out += [f"| {n} | {_md(p['error_accuracy'])} | {_md(p['correct_accuracy'])} | {_md(p['f1'])} | "
                f"{p['n_error']} | {p['n_correct']} |" for n, p in pb.items()]
        if summary.get("mean_f1") is not None:
            out += ["", f"mean F1 over {len(pb)} files: **{summary['mean_f1']:.3f}**"]
        out.append("")
    sf = {n: r["step_f1"] for n, r in files.items() if "step_f1" in r}
    if sf:
        out += ["## Step-level F1", "", "| data | class | precision | recall | F1 | accuracy | steps |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {n} | {c} | {_md(s[c]['precision'])} | {_md(s[c]['recall'])} | {_md(s[c]['f1'])} | "
                f"{_md(s[c]['accuracy'])} | {s[c]['steps']} |" for n, s in sf.items() for c in ("error", "correct")]
        out.append("")
    bon = {n: r["best_of_n"] for n, r in files.items() if r.get("best_of_n", {}).get("groups")}
    if bon:
        cols = (*AGGREGATIONS, *BOUNDS)
        out += ["## Best-of-n accuracy per aggregation", "", "| data | prompts | n | " + " | ".join(cols) + " |",
                "|---" * (len(cols) + 3) + "|"]
        out += [f"| {n} | {b['groups']} | {b['n_mean']:.1f} | " + " | ".join(_md(b.get(c)) for c in cols) + " |"
                for n, b in bon.items()]
        out.append("")
    return "\n".join(out)


def plot_bon(summary: dict[str, Any], path: Path) -> bytes | None:
    """Bars: best-of-n accuracy per aggregation, one group per data file; dashed oracle, dotted random."""
    bon = {n: r["best_of_n"] for n, r in summary["files"].items() if r.get("best_of_n", {}).get("groups")}
    if not bon:
        return None
    from rewardlab.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 * len(bon) + 2), 3.6))
    width = 0.8 / len(AGGREGATIONS)
    for j, m in enumerate(AGGREGATIONS):
        xs = [i + (j - (len(AGGREGATIONS) - 1) / 2) * width for i in range(len(bon))]
        ax.bar(xs, [b[m] or 0.0 for b in bon.values()], width, label=m)
    for i, b in enumerate(bon.values()):
        ax.hlines(b["oracle"], i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1)
        ax.hlines(b["random"], i - 0.45, i + 0.45, colors="k", linestyles=":", lw=1)
    ax.set_xticks(range(len(bon)), [Path(n).name for n in bon])
    ax.set_ylabel("best-of-n accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=len(AGGREGATIONS))
    return save_figure(fig, path)


def _file_section(name: str, r: dict[str, Any]) -> str:
    cards = [_card("Solutions", _kv_table({"solutions": r["examples"], "threshold": r["threshold"],
                                            **r["truncation"]}))]
    if "processbench" in r:
        cards.append(_card("ProcessBench (first-error index)", _kv_table(r["processbench"])))
    if "step_f1" in r:
        for c in ("error", "correct"):
            cards.append(_card(f"Step-level F1: {c} steps", _kv_table(r["step_f1"][c], skip=("positive",))))
    bon = r.get("best_of_n")
    if bon and bon.get("groups"):
        rows = "".join(f"<tr><th>{html.escape(m)}</th><td>{_fmt(v)}</td></tr>" for m, v in _bon_rows(bon))
        cards.append(_card(f"Best-of-n accuracy per aggregation ({bon['groups']} prompts, n≈{bon['n_mean']:.1f})",
                           f"<table>{rows}</table>"))
    return f"<h2>{html.escape(name)}</h2><div class='cards'>{''.join(cards)}</div>"


def render_html(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    meta = {"model": summary["model"], "separator": repr(summary["separator"]), "max length": summary["max_length"],
            "mean F1 (ProcessBench)": summary.get("mean_f1")}
    imgs = "".join(f"<figure><img alt='{html.escape(n)}' src='data:image/png;base64,{base64.b64encode(b).decode()}'>"
                   f"<figcaption>Best-of-n accuracy per aggregation of step rewards; dashed: oracle, dotted: random "
                   f"pick ({html.escape(n)})</figcaption></figure>" for n, b in figures.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rewardlab PRM teacher report</title>"
            f"<style>{CSS}</style></head><body><h1>Process reward model teacher report</h1>"
            f"{_kv_table({k: v for k, v in meta.items() if v is not None})}<div class='figs'>{imgs}</div>"
            + "".join(_file_section(n, r) for n, r in summary["files"].items()) + "</body></html>")


def write_prm_report(out_dir: str | Path, summary: dict[str, Any]) -> dict[str, Path]:
    """Write metrics.json, then the PNG, report.html and report.md into ``out_dir``."""
    from rewardlab.io import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", summary)
    paths, figures = {"metrics.json": out / "metrics.json"}, {}
    with plotting(out / "bon_by_aggregation.png", out / "metrics.json"):
        data = plot_bon(summary, out / "bon_by_aggregation.png")
    if data is not None:
        figures["bon_by_aggregation.png"] = data
        paths["bon_by_aggregation.png"] = out / "bon_by_aggregation.png"
    write_text_atomic(out / "report.html", render_html(summary, figures))
    write_text_atomic(out / "report.md", render_markdown(summary) + "\n")
    return paths | {"report.html": out / "report.html", "report.md": out / "report.md"}
