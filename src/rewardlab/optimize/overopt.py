"""Families of overoptimization curves (Gao et al. 2022, "Scaling Laws for Reward Model Overoptimization"):
``rewardlab overopt RUN [RUN ...]`` reads several optimize runs, fits each run's gold curve, overlays them in one
figure and reports how the fitted peak moves across the runs (:func:`compare_runs`).

One run gives one curve of gold gain against ``d = √KL(π ‖ π₀)`` and its fit (:mod:`rewardlab.optimize.fits`); the
paper's finding is the *family*: with a larger proxy RM (or more RM data) the curves peak later and higher, and α, β
move smoothly with RM size. Which form a run is fitted with follows what it is:

* best-of-n (a ``bon_table.csv``): ``gold(d) = d(α − βd)``, d the bound √(log n − (n−1)/n);
* RL loops (``metrics.jsonl`` eval rows, rloo/grpo/raft/dpo): ``gold(d) = d(α − β log d)``.

Gold is taken relative to the run's first point (n = 1, or step 0), as the fits need ``gold(0) = 0``.

The fitted peak (both forms need α > 0 and β > 0 to have one; otherwise the run is flagged *outside Gao's form*):

* BoN: ``g(d) = αd − βd²``, ``g'(d) = α − 2βd = 0`` at ``d* = α / (2β)``; ``g''(d) = −2β < 0``, a maximum; the gold
  there is ``g(d*) = α²/(2β) − α²/(4β) = α² / (4β)``.
* RL: ``g(d) = αd − βd log d``, ``g'(d) = α − β(log d + 1) = 0`` at ``d* = exp(α/β − 1)``; ``g''(d) = −β/d < 0`` for
  d > 0, a maximum; the gold there is ``g(d*) = d*(α − β(α/β − 1)) = β·d*``.

Runs are compared in the order given, or sorted by ``by``: ``"label"`` (the ``labels`` read as numbers, e.g. RM sizes
in parameters) or a dotted key of the runs' ``summary.json`` (e.g. ``args.kl_coef``). The movement of d* and of the
gold at the peak is reported step by step and as a direction (rises / falls / not monotone) over the runs that have a
peak; runs without one are named, never silently dropped.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.errors import UserError
from rewardlab.optimize.fits import GaoFit, fit_gao


@dataclass
class RunCurve:
    """One run's gold curve: ``d`` (√KL), ``gold`` (gain over the first point), its fit and where it sits in the
    family (``label``, ``key``: the number it is sorted by, if any)."""

    path: Path
    label: str
    form: str
    d: list[float]
    gold: list[float]
    fit: GaoFit
    key: float | None = None


def fitted_peak(fit: GaoFit) -> tuple[float, float] | None:
    """``(d*, gold(d*))`` of a fit in Gao's form (module docstring: BoN ``α/(2β), α²/(4β)``; RL
    ``exp(α/β − 1), β·d*``); None outside it (α ≤ 0 or β ≤ 0) or when the fit is insufficient."""
    if not fit.in_form:
        return None
    if fit.form == "bon":
        return fit.alpha / (2 * fit.beta), fit.alpha**2 / (4 * fit.beta)
    d = math.exp(fit.alpha / fit.beta - 1)
    return d, fit.beta * d


def form_problem(fit: GaoFit) -> str | None:
    """Why a fit has no Gao-shaped peak, in words (None when it has one)."""
    if not fit.sufficient:
        return f"no fit: {fit.reason} ({fit.n_distinct} given)"
    if not fit.alpha > 0 and not fit.beta > 0:
        return "outside Gao's form: α ≤ 0 and β ≤ 0 (gold never rose)"
    if not fit.alpha > 0:
        return "outside Gao's form: α ≤ 0 (gold never rose)"
    if not fit.beta > 0:
        return "outside Gao's form: β ≤ 0 (gold never turned down: no peak in reach)"
    return None


def read_curve(run: str | os.PathLike) -> tuple[str, list[float], list[float]]:
    """``(form, d, gold)`` of an optimize run directory: best-of-n's ``bon_table.csv`` (form "bon"), else the eval
    rows of ``metrics.jsonl`` (form "rl"; one row per step, the last one logged, in step order). Gold as logged
    (absolute). UserError naming FILE:LINE for a run that cannot give a gold curve."""
    run = Path(run)
    table, metrics = run / "bon_table.csv", run / "metrics.jsonl"
    if table.exists():
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "gold" not in rows[0]:
            raise UserError(f"{table}:1: gold: no gold column (the run had no --gold)")
        try:
            return "bon", [float(r["sqrt_kl"]) for r in rows], [float(r["gold"]) for r in rows]
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{table}: sqrt_kl/gold: not numbers ({e})") from None
    if not metrics.exists():
        raise UserError(f"{run}: not an optimize run directory (no bon_table.csv or metrics.jsonl)")
    by_step: dict[int, tuple[float, float]] = {}
    for line_no, line in enumerate(metrics.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{metrics}:{line_no}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or row.get("kind") != "eval":
            continue
        for name in ("step", "sqrt_kl", "gold_mean"):
            if not isinstance(row.get(name), (int, float)) or isinstance(row.get(name), bool):
                what = "missing (the run had no --gold)" if name == "gold_mean" and name not in row else "not a number"
                raise UserError(f"{metrics}:{line_no}: {name}: {what}")
        by_step[int(row["step"])] = (float(row["sqrt_kl"]), float(row["gold_mean"]))
    if not by_step:
        raise UserError(f"{metrics}:1: no eval rows (kind 'eval' with sqrt_kl and gold_mean)")
    steps = sorted(by_step)
    return "rl", [by_step[s][0] for s in steps], [by_step[s][1] for s in steps]


def summary_value(run: Path, key: str) -> float:
    """The number at dotted ``key`` of ``run/summary.json`` (UserError when it is missing or not a number)."""
    path = run / "summary.json"
    try:
        value: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: --by {key}: cannot read it ({e})") from None
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UserError(f"{path}: --by {key}: no such key")
        value = value[part]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"{path}: --by {key}: {value!r} is not a number")
    return float(value)


def load_curves(runs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None, by: str | None = None,
                form: str | None = None) -> list[RunCurve]:
    """Every run's curve and fit (``form`` overrides the one read from the run), ordered as given or by ``by``."""
    if labels and len(labels) != len(runs):
        raise UserError(f"--label: {len(labels)} labels for {len(runs)} runs (give one per run, in order)")
    curves = []
    for i, run in enumerate(runs):
        path = Path(run)
        found, d, gold = read_curve(path)
        f = form or found
        gain = [g - gold[0] for g in gold]
        label = labels[i] if labels else path.name
        key = None
        if by == "label":
            try:
                key = float(label)
            except ValueError:
                raise UserError(f"--by label: label {label!r} of {path} is not a number") from None
        elif by:
            key = summary_value(path, by)
        curves.append(RunCurve(path, label, f, d, gain, fit_gao(d, gain, f), key))
    return sorted(curves, key=lambda c: c.key) if by else curves


def movement(values: Sequence[tuple[str, float]]) -> str:
    """"rises", "falls", "stays", or "not monotone" over the values in order (fewer than two: "n/a")."""
    if len(values) < 2:
        return "n/a (fewer than two runs with a peak)"
    steps = np.diff([v for _, v in values])
    if (steps > 0).all():
        return "rises"
    if (steps < 0).all():
        return "falls"
    if (steps == 0).all():
        return "stays"
    return "not monotone"


def compare_runs(runs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None, by: str | None = None,
                 figure: str | os.PathLike | None = None, form: str | None = None) -> dict[str, Any]:
    """Fit every run, write the overlay ``figure`` (if given) and return ``{"runs": [one row per run], "order",
    "peak_d", "peak_gold"}``: each row has label, path, form, points, α, β, R², d*, the fitted gold at d*, the
    largest gold gain observed (and its d), ``problem`` (None, or why there is no peak) and ``peak_beyond_data`` (d*
    past the largest d measured: the peak is the fit's extrapolation); ``peak_d`` /
    ``peak_gold`` say how d* and the gold at the peak move across the runs (``steps``: consecutive changes,
    ``direction``, ``without_peak``)."""
    curves = load_curves(runs, labels, by, form)
    rows = []
    for c in curves:
        peak = fitted_peak(c.fit)
        best = int(np.argmax(c.gold))
        rows.append({"label": c.label, "path": str(c.path), "form": c.form, "points": len(c.d), "d_max": max(c.d),
                     "key": c.key,
                     "alpha": _num(c.fit.alpha), "beta": _num(c.fit.beta), "r2": _num(c.fit.r2),
                     "d_peak": peak[0] if peak else None, "gold_peak": peak[1] if peak else None,
                     "observed_best_gold": c.gold[best], "observed_best_d": c.d[best], "problem": form_problem(c.fit),
                     "peak_beyond_data": bool(peak and peak[0] > max(c.d))})
    with_peak = [r for r in rows if r["d_peak"] is not None]
    out: dict[str, Any] = {"runs": rows, "order": f"sorted by {by}" if by else "as given"}
    for name, key in (("d_peak", "peak_d"), ("gold_peak", "peak_gold")):
        values = [(r["label"], r[name]) for r in with_peak]
        out[key] = {
            "steps": [{"from": a, "to": b, "change": vb - va} for (a, va), (b, vb) in zip(values, values[1:])],
            "direction": movement(values), "without_peak": [r["label"] for r in rows if r["d_peak"] is None]}
    if figure is not None:
        plot_family(curves, figure)
    return out


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def plot_family(curves: Sequence[RunCurve], path: str | os.PathLike) -> None:
    """Each run's gold gain vs d (points) with its fitted Gao curve (dashed, same colour) and fitted peak (star),
    one axis; written atomically (a temporary file in the same directory, then renamed)."""
    from rewardlab.evaluate.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, c in enumerate(curves):
        colour = f"C{i % 10}"
        f, peak = c.fit, fitted_peak(c.fit)
        name = c.label if f.sufficient else f"{c.label} (no fit)"
        ax.plot(c.d, c.gold, "o", color=colour, label=name, markersize=4)
        if f.sufficient:
            grid = np.linspace(0, max(max(c.d), peak[0] if peak else 0) * 1.05, 200)
            tag = f"α={f.alpha:.3g} β={f.beta:.3g}" + ("" if peak else " (outside Gao's form)")
            ax.plot(grid, f.predict(grid), "--", color=colour, label=f"  {c.form} fit {tag}")
        if peak:
            ax.plot([peak[0]], [peak[1]], "*", color=colour, markersize=12)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("d = √KL(π ‖ π₀)  (best-of-n: the bound)")
    ax.set_ylabel("gold gain over the first point")
    ax.set_title("Gold vs √KL across runs, with Gao et al. fits (★ fitted peak)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
