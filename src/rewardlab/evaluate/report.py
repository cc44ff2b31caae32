"""The teacher report: ``metrics.json`` (written first), PNG plots (:mod:`rewardlab.evaluate.plots`) and a
self-contained ``report.html`` with the PNGs embedded as base64. Several models appear side by side (``--compare``).

Comparison table: accuracy, RV and on-policy accuracy are shown with their 95% bootstrap CIs; the best value of such
a column is bold only when it is *separated* from the runner-up, i.e. the paired bootstrap CI of their difference
(:func:`rewardlab.evaluate.suite.paired_difference_ci`) excludes 0. Columns without a CI are never bold.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.evaluate.plots import (
    plot_histograms,
    plot_reliability,
    plot_reward_vs_length,
    plot_rv_per_prompt,
    plot_subsets,
    plotting,
)
from rewardlab.evaluate.suite import CI_KEYS, CI_LEVEL, N_BOOT, EvalResult, json_ready, paired_difference_ci

# comparison-table columns: (key, label, direction) with direction +1 = higher is better, -1 = lower, 0 = neither
COLUMNS = [
    ("accuracy", "Accuracy", 1), ("tie_rate", "Tie rate", -1), ("rb1_overall", "RB1 sections", 1),
    ("rb2_overall", "RB2 overall", 1), ("ece", "ECE", -1), ("brier", "Brier", -1),
    ("length_spearman", "Len. Spearman", 0), ("acc_chosen_shorter", "Acc (chosen shorter)", 1),
    ("acc_chosen_longer", "Acc (chosen longer)", 1), ("reward_variance", "Reward variance", 1),
    ("on_policy_accuracy", "On-policy acc.", 1), ("attribute_mse", "Attr. MSE (mean)", -1),
    ("attribute_pearson", "Attr. Pearson (mean)", 1), ("attribute_spearman", "Attr. Spearman (mean)", 1),
]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def _winner(results: Sequence[EvalResult], key: str) -> tuple[int | None, str | None]:
    """(index of the model to bold in CI column ``key`` or None, a note on the test). The best model is bold only
    if the paired bootstrap CI of (best − runner-up) excludes 0."""
    vals = [(r.metrics["summary"].get(key), i) for i, r in enumerate(results)]
    vals = sorted(((v, i) for v, i in vals if v is not None and math.isfinite(v)), key=lambda t: (-t[0], t[1]))
    if key == "reward_variance":  # variance helps only a reward that points the right way on the policy
        aligned = [(v, i) for v, i in vals if _aligned(results[i].metrics["summary"]) is not False]
        if len(aligned) < len(vals):
            dropped = ", ".join(html.escape(results[i].name) for v, i in vals if (v, i) not in aligned)
            winner, note = _winner_among(results, aligned, key) if len(aligned) >= 2 else (None, None)
            why = (f"{dropped}: on-policy accuracy not above 0.5 (CI), so its variance is fast optimization in the "
                   "wrong direction; not a candidate for bold")
            return winner, why + (f"; {note}" if note else "")
    if len(vals) < 2:
        return None, None
    return _winner_among(results, vals, key)


def _aligned(summary: dict[str, Any]) -> bool | None:
    """Whether the on-policy accuracy CI lies above 0.5 (None: not measured)."""
    ci = summary.get("on_policy_accuracy_ci")
    if not ci or ci[0] is None or not math.isfinite(ci[0]):
        return None
    return ci[0] > 0.5


def _winner_among(results: Sequence[EvalResult], vals: list[tuple[float, int]], key: str
                  ) -> tuple[int | None, str | None]:
    (v1, i1), (v2, i2) = vals[0], vals[1]
    a, b = results[i1], results[i2]
    pair = f"{html.escape(a.name)} − {html.escape(b.name)} = {v1 - v2:+.3f}"
    ci = paired_difference_ci(a.metrics, b.metrics, key)
    if ci is None:
        return None, f"{pair}: no paired CI (different units, or no per-unit data), not bold"
    separated = v1 > v2 and ci[0] > 0
    verdict = "separated, bold" if separated else "not separated, not bold"
    return (i1 if separated else None), f"{pair}, {CI_LEVEL:.0%} CI [{ci[0]:+.3f}, {ci[1]:+.3f}]: {verdict}"


def _cell(summary: dict[str, Any], key: str) -> str:
    ci = summary.get(f"{key}_ci")
    if ci and all(c is not None for c in ci):
        return f"{_fmt(summary.get(key))} <small>[{ci[0]:.3f}, {ci[1]:.3f}]</small>"
    return _fmt(summary.get(key))


def comparison_table(results: Sequence[EvalResult]) -> str:
    """HTML table: one row per model, the summary metrics as columns, accuracy / RV / on-policy accuracy with
    their bootstrap CIs; a best value is bold only when separated from the runner-up (see the module docstring).
    Below the table, the paired difference behind each decision."""
    cols = [c for c in COLUMNS if any(r.metrics["summary"].get(c[0]) is not None for r in results)]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in cols)
    bold, notes = {}, []
    for key, label, _ in cols:
        if key in CI_KEYS:
            bold[key], note = _winner(results, key)
            if note:
                notes.append(f"<li>{html.escape(label)}: {note}</li>")
    datas = {r.metrics.get("data") for r in results}
    if len(datas) > 1:
        head = "<th>data</th>" + head
    rows = []
    for i, r in enumerate(results):
        data = str(r.metrics.get("data"))
        cells = [f"<td title='{html.escape(data)}'>{html.escape(Path(data).name)}</td>"] if len(datas) > 1 else []
        for key, _, _ in cols:
            text = _cell(r.metrics["summary"], key)
            cells.append(f"<td><b>{text}</b></td>" if bold.get(key) == i else f"<td>{text}</td>")
        rows.append(f"<tr><th>{html.escape(r.name)}</th>{''.join(cells)}</tr>")
    table = f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"
    if any(f"{k}_ci" in r.metrics["summary"] for r in results for k in CI_KEYS):
        table += (f"<p>[lo, hi]: {CI_LEVEL:.0%} percentile bootstrap CI ({N_BOOT} resamples of the pairs for "
                  "accuracy, of the prompts for RV and on-policy accuracy). Bold: the best value, only when the "
                  "paired bootstrap CI of its difference to the runner-up (the same resamples for both models) "
                  "excludes 0; columns without a CI are never bold.</p>")
    if notes:
        table += f"<ul>{''.join(notes)}</ul>"
    return table


LABELS = {
    "n_pairs": "pairs", "accuracy": "accuracy (ties wrong)", "tie_rate": "tie rate", "mean_margin": "mean Δ",
    "ece": "ECE (10 bins, T = 1)", "brier": "Brier score", "nll": "NLL of σ(Δ)", "n_val": "validation pairs",
    "n_test": "held-out pairs", "test_ece_raw": "held-out ECE, T = 1", "test_ece_scaled": "held-out ECE, fitted T",
    "test_nll_raw": "held-out NLL, T = 1", "test_nll_scaled": "held-out NLL, fitted T",
    "test_ece_kept": "held-out ECE, kept T", "test_nll_kept": "held-out NLL, kept T",
    "cv_ece_raw": "validation ECE (cross-validated), T = 1",
    "cv_ece_scaled": "validation ECE (cross-validated), fitted T",
    "fitted_temperature": "fitted temperature T (NLL)", "kept": "fitted T kept",
    "temperature": "temperature T", "spearman": "Spearman(reward, length)",
    "acc_chosen_shorter": "accuracy, chosen shorter", "acc_chosen_longer": "accuracy, chosen longer",
    "n_chosen_shorter": "pairs, chosen shorter", "n_chosen_longer": "pairs, chosen longer",
    "reward_variance": "reward variance (RV)", "on_policy_accuracy": "on-policy accuracy",
    "gold_reward_variance": "gold reward's RV", "mean_std": "mean std of Δ across members",
    "corr_with_error": "corr(std, error), Pearson", "spearman_with_error": "corr(std, error), Spearman",
    "error_rate": "ensemble error rate", "n_responses": "responses", "n_prompts": "prompts",
    "mean_response_chars": "mean response length (chars)",
}


def _kv_table(d: dict[str, Any], skip: Sequence[str] = ()) -> str:
    skip = (*skip, "at_bound")
    rows = "".join(f"<tr><th>{html.escape(LABELS.get(str(k), str(k).replace('_', ' ')))}</th><td>{_fmt(v)}</td></tr>"
                   for k, v in d.items() if not isinstance(v, (dict, list)) and k not in skip)
    return f"<table class='kv'>{rows}</table>"


def _card(title: str, body: str) -> str:
    return f"<div class='card'><h3>{html.escape(title)}</h3>{body}</div>"


ATTR_COLS = ("n", "mse", "pearson", "spearman", "mean_pred", "mean_rating")


def _model_section(r: EvalResult) -> str:
    m = r.metrics
    cards = []
    if "pairs" in m:
        p = m["pairs"]
        cards.append(_card("Pairwise", _kv_table(p)))
        sub = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v['accuracy'])}</td><td>{_fmt(v['tie_rate'])}</td>"
                      f"<td>{v['n']}</td></tr>" for k, v in p["subsets"].items())
        cards.append(_card("Subsets", "<table><tr><th>subset</th><th>accuracy</th><th>tie rate</th><th>n</th></tr>"
                           f"{sub}</table>"))
        if "sections" in p:
            sec = p["sections"]
            extra = (f"<p>not in any section: {html.escape(', '.join(sec['unsectioned']))}</p>"
                     if sec["unsectioned"] else "")
            cards.append(_card("RewardBench-1-style sections", _kv_table(sec["sections"])
                               + f"<p>overall (mean of sections): <b>{_fmt(sec['overall'])}</b></p>{extra}"))
        cal = p["calibration"]
        body = _kv_table(cal, skip=("temperature",))
        if "fitted" in cal:
            f = cal["fitted"]
            body += f"<p>temperature fitted on {f['n_val']} pairs, tested on the other {f['n_test']}:</p>"
            if "reason" in f:  # the kept T and why (evaluate.calibration.held_out_temperature)
                body += f"<p>kept T = {_fmt(f['temperature'])}: {html.escape(f['reason'])}</p>"
            elif f.get("at_bound"):
                body += ("<p><b>T is at its search bound</b>: the validation pairs are (nearly) separable, so the "
                         "NLL has no finite minimizer; do not use this T.</p>")
            body += _kv_table(f, skip=("n_val", "n_test", "reason"))
        cards.append(_card("Calibration of p = σ(Δ)", body))
        cards.append(_card("Length bias", _kv_table(p["length_bias"])))
        if "ensemble" in p:
            cards.append(_card("Ensemble disagreement", _kv_table(p["ensemble"])))
    if "kway" in m:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v['score'])}</td><td>{v['n']}</td></tr>"
                       for k, v in m["kway"]["subsets"].items())
        body = (f"<table><tr><th>subset</th><th>score</th><th>rows</th></tr>{rows}</table><p>overall "
                f"(unweighted mean of subsets): <b>{_fmt(m['kway']['overall'])}</b></p>")
        cards.append(_card("RewardBench-2-style (best-of-n, Ties formula)", body))
        for name, v in m["kway"]["subsets"].items():
            if "ties" in v:
                cards.append(_card(f"{name}: terms of the weighted score", _kv_table(v["ties"])))
    if "attributes" in m:
        a = m["attributes"]
        rows = "".join(f"<tr><th>{html.escape(k)}</th>" + "".join(f"<td>{_fmt(v[c])}</td>" for c in ATTR_COLS)
                       + "</tr>" for k, v in a["attributes"].items())
        extra = "".join(f"<p>{html.escape(t)}: {html.escape(', '.join(a[k]))}</p>" for k, t in
                        (("not_in_model", "rated, not predicted"), ("not_rated", "predicted, not rated")) if a[k])
        cards.append(_card(f"Attributes ({a['n_rows']} rated rows)", "<table><tr><th>attribute</th>"
                           + "".join(f"<th>{c.replace('_', ' ')}</th>" for c in ATTR_COLS) + f"</tr>{rows}</table>"
                           + extra))
    if "teacher" in m:
        cards.append(_card("Teacher metrics (policy samples)", _kv_table(m["teacher"])))
    return f"<h2>{html.escape(r.name)}</h2><div class='cards'>{''.join(cards)}</div>"


CAPTIONS = {
    "reliability.png": "Reliability diagram: accuracy vs confidence per bin, with the number of pairs per bin.",
    "reward_histograms.png": "Rewards of chosen vs rejected responses (main model).",
    "reward_vs_length.png": "Reward vs response length in characters (main model).",
    "subsets.png": "Per-subset scores, all models.",
    "rv_per_prompt.png": "Within-prompt reward variance per prompt (dots), its distribution (box) and RV (bar).",
}


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:24px auto;
padding:0 16px;color:#222;line-height:1.45}table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f3f3}tr th:first-child{text-align:left}.kv th{text-align:left;font-weight:normal}
img{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}.figs{display:flex;flex-wrap:wrap;gap:12px}
.figs figure{margin:0;flex:1 1 520px}.note{background:#f7f7ff;border-left:4px solid #88a;padding:8px 12px}
.scroll{overflow-x:auto}.cards{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start}
.card h3{margin:10px 0 4px;font-size:1.0em}figcaption{font-size:.9em;color:#555}"""


def render_html(results: Sequence[EvalResult], figures: dict[str, bytes], meta: dict[str, Any]) -> str:
    imgs = "".join(
        f"<figure><img alt='{html.escape(n)}' src='data:image/png;base64,{base64.b64encode(b).decode()}'>"
        f"<figcaption>{html.escape(CAPTIONS.get(n, ''))} ({html.escape(n)})</figcaption></figure>"
        for n, b in figures.items())
    meta_rows = _kv_table({k: v for k, v in meta.items() if v is not None})
    teacher_note = ""
    if any("teacher" in r.metrics for r in results):
        teacher_note = ("<p class='note'><b>Reading the teacher columns.</b> Reward variance (RV) is the mean over "
                        "prompts of the within-prompt variance of rewards standardized over all policy samples "
                        "(Razin et al. 2025). A reward model that induces low RV gives a flat RLHF objective and "
                        "slow optimization however accurate it is; pick teachers by accuracy <i>and</i> RV under "
                        "the policy you will train. For a verdict — direction first, then speed, checked by "
                        "short gold-tracked probes — run <code>rewardlab teachers</code>.</p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rewardlab teacher report</title>"
            f"<style>{CSS}</style></head><body><h1>Reward model teacher report</h1>{meta_rows}"
            f"<h2>Comparison</h2><div class='scroll'>{comparison_table(results)}</div>{teacher_note}"
            f"<div class='figs'>{imgs}</div>" + "".join(_model_section(r) for r in results) + "</body></html>")


def write_report(out_dir: str | Path, results: Sequence[EvalResult], meta: dict[str, Any] | None = None
                 ) -> dict[str, Path]:
    """Write metrics.json, then the PNGs and report.html into ``out_dir``; ``results[0]`` is the main model.
    A plotting failure raises :class:`PlotError` with metrics.json already written."""
    from rewardlab.io import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = meta or {}
    main = results[0]
    plots = [("reliability.png", lambda p: plot_reliability(results, p)),
             ("reward_histograms.png", lambda p: plot_histograms(main, p)),
             ("reward_vs_length.png", lambda p: plot_reward_vs_length(main, p)),
             ("subsets.png", lambda p: plot_subsets(results, p)),
             ("rv_per_prompt.png", lambda p: plot_rv_per_prompt(results, p))]
    write_json_atomic(out / "metrics.json", json_ready({"main": main.name, "meta": meta,
                                                        "models": {r.name: r.metrics for r in results}}))
    figures, paths = {}, {"metrics.json": out / "metrics.json"}
    for fname, fn in plots:  # the numbers are on disk before any plotting can fail
        with plotting(out / fname, out / "metrics.json"):
            data = fn(out / fname)
        if data is not None:
            figures[fname], paths[fname] = data, out / fname
    write_text_atomic(out / "report.html", render_html(results, figures, meta))
    paths["report.html"] = out / "report.html"
    return paths
