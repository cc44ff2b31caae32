"""The lab report: a self-contained report.html (figures embedded as base64 PNG) with the claims table first."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from rewardlab.io import write_text_atomic
from rewardlab.lab.common import ExperimentResult
from rewardlab.lab.figures import figure_table
from rewardlab.lab.verdicts import INCONCLUSIVE, REPRODUCED, RULE

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:24px auto;padding:0 16px;
color:#1d1d1f;line-height:1.45}
h1{font-size:26px;margin-bottom:4px} h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:5px 7px;vertical-align:top;text-align:left} th{background:#f4f4f6}
.ok{background:#e3f6e8;color:#12602b;font-weight:600;white-space:nowrap}
.no{background:#fde8e8;color:#8a1c1c;font-weight:600;white-space:nowrap}
.inc{background:#fff4d6;color:#7a5200;font-weight:600;white-space:nowrap}
.muted{color:#666;font-size:13px} figure{margin:16px 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13.5px;color:#333;margin-top:4px} pre{background:#f7f7f9;padding:8px;font-size:12px;
overflow-x:auto;white-space:pre-wrap} .box{background:#fff7e6;border:1px solid #f0c36d;padding:8px 12px}
"""


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def claims_table(results: list[ExperimentResult]) -> str:
    rows = []
    for r in results:
        for c in r.claims:
            cls = {REPRODUCED: "ok", INCONCLUSIVE: "inc"}.get(c.verdict, "no")
            rows.append(f"<tr><td>{html.escape(c.paper)}</td><td>{html.escape(c.statement)}</td>"
                        f"<td>{html.escape(c.direction)}</td><td>{html.escape(c.measured)}</td>"
                        f"<td class=muted>{html.escape(c.rule)}<br><i>{html.escape(c.test.summary)}</i></td>"
                        f"<td class={cls}>{c.verdict}</td></tr>")
    return ("<table><tr><th>paper</th><th>claim</th><th>paper's direction</th><th>measured here (mean ± sd over "
            "seeds)</th><th>tested number · evidence</th><th>verdict</th></tr>" + "".join(rows) + "</table>")


def claims_markdown(results: list[ExperimentResult]) -> str:
    """The claims table as Markdown (for notes and the terminal log)."""
    lines = ["| paper | claim | measured | verdict |", "|---|---|---|---|"]
    for r in results:
        for c in r.claims:
            why = f" — {c.reason}" if c.reason else ""
            lines.append(f"| {c.paper} | {c.statement} | {c.measured} | **{c.verdict}**{why} |")
    return "\n".join(lines)


def write_report(results: list[ExperimentResult], figures: dict[str, list[tuple[str, str]]], out: Path,
                 meta: dict) -> Path:
    failed = [c for r in results for c in r.claims if not c.reproduced]
    seeds = ", ".join(f"{k} {len(v)}" for k, v in meta["seeds"].items())
    if meta.get("seed_offset"):
        seeds += f" (from seed {meta['seed_offset']})"
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>rewardlab lab report</title><style>{CSS}"
             "</style></head><body>",
             "<h1>rewardlab lab — reproducing reward-model findings in a world with a known gold reward</h1>",
             f"<p class=muted>preset <b>{html.escape(meta['preset'])}</b> · seeds per experiment "
             f"{html.escape(seeds)} · wall time "
             f"{meta['wall_seconds']:.0f} s · {html.escape(meta['started'])} · rewardlab {meta['version']}</p>",
             "<p>Every number below was measured in this run. Each claim is decided from one number per seed (each "
             f"seed is a new world): {html.escape(RULE)}. Gains are in units of the π₀ standard deviation of the "
             "gold reward.</p>", "<h2>Claims</h2>", claims_table(results)]
    if failed:
        parts.append("<div class=box><b>Not reproduced or inconclusive in this run, and why:</b><ul>" + "".join(
            f"<li><b>{html.escape(c.id)}</b> ({c.verdict}): {html.escape(c.statement)}. <i>Why:</i> "
            f"{html.escape(c.reason)}</li>" for c in failed) + "</ul></div>")
    else:
        parts.append("<p>All claims reproduced in this run.</p>")
    parts.append("<h2>The world</h2><p>" + html.escape(meta["world"]) + "</p>")
    for r in results:
        parts.append(f"<h2>{html.escape(r.title)}</h2>")
        table = figure_table(r.name)
        if table is not None:
            parts.append(table(r.data))
        for name, caption in figures.get(r.name, []):
            parts.append(f"<figure><img src='{_img(out / name)}' alt='{html.escape(name)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("<pre>" + html.escape("\n".join(r.lines)) + "</pre>")
    timing = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f}</td></tr>" for k, v in meta["timings"].items())
    parts.append(f"<h2>Where the time went</h2><table><tr><th>stage</th><th>seconds</th></tr>{timing}</table>")
    parts.append("</body></html>")
    path = out / "report.html"
    write_text_atomic(path, "\n".join(parts))
    return path
