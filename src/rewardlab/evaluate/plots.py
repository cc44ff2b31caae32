"""The reports' figures: matplotlib on the Agg backend (imported lazily, no display needed), PNGs written atomically
and returned as bytes so an HTML report can inline them, and :func:`plotting`, the guard that turns a failed figure
into a :class:`PlotError` naming the file that already holds the numbers (results are written before any plot).

Used by the teacher report (:mod:`rewardlab.evaluate.report`: the ``plot_*`` figures below), the PRM report, the
teachers verdict and the optimize runs' overoptimization plots.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rewardlab.evaluate.suite import EvalResult


class PlotError(RuntimeError):
    """A figure failed after the results were written; the message names the file that holds them."""


@contextlib.contextmanager
def plotting(figure: str | Path, results: str | Path) -> Iterator[None]:
    """Run plotting code after ``results`` is on disk: any failure becomes a :class:`PlotError` that says so."""
    try:
        yield
    except Exception as e:
        raise PlotError(f"plotting {figure} failed ({type(e).__name__}: {e}); the results are saved in "
                        f"{results}") from e


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed) with the reports' font sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "figure.dpi": 100})
    return plt


def save_figure(fig, path: Path) -> bytes:
    """Write ``fig`` to ``path`` as PNG atomically, close it, and return the bytes (reports inline them)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    data = buf.getvalue()
    from rewardlab.io import write_bytes_atomic

    write_bytes_atomic(path, data)
    return data


def plot_reliability(results: Sequence[EvalResult], path: Path) -> bytes | None:
    """Accuracy vs confidence per bin (one line per model) against the diagonal, with bin counts below."""
    models = [(r.name, r.metrics["pairs"]["calibration"]["reliability"]) for r in results if "pairs" in r.metrics]
    if not models:
        return None
    plt = pyplot()
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(6.4, 6.4), height_ratios=[3, 1], sharex=True)
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color="grey", label="perfect calibration")
    width = 0.5 / len(models[0][1]["count"]) / (len(models) + 1)
    for k, (name, rd) in enumerate(models):
        conf = np.array(rd["confidence"], dtype=float)
        acc = np.array(rd["accuracy"], dtype=float)
        ok = np.isfinite(conf)
        ax.plot(conf[ok], acc[ok], "o-", label=name)
        centers = (np.array(rd["edges"][:-1]) + np.array(rd["edges"][1:])) / 2
        axc.bar(centers + (k - (len(models) - 1) / 2) * width, rd["count"], width=width, label=name)
    ax.set_ylabel("accuracy (chosen ranked higher)")
    ax.set_title("Reliability diagram: p = σ(r_chosen − r_rejected)")
    ax.set_ylim(-0.02, 1.3)  # headroom for the legend above the data
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(loc="upper center", ncol=3, fontsize=9)
    ax.grid(alpha=0.3)
    axc.set_xlabel("confidence max(p, 1 − p)")
    axc.set_ylabel("pairs")
    axc.set_xlim(0.48, 1.02)
    return save_figure(fig, path)


def plot_histograms(result: EvalResult, path: Path) -> bytes | None:
    """Reward distributions of chosen vs rejected responses (one model)."""
    a = result.arrays
    if "chosen" not in a:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    both = np.r_[a["chosen"], a["rejected"]]
    bins = np.linspace(both.min(), both.max() + 1e-9, 31)
    ax.hist(a["chosen"], bins=bins, alpha=0.6, label=f"chosen (n={len(a['chosen'])})", color="tab:green")
    ax.hist(a["rejected"], bins=bins, alpha=0.6, label=f"rejected (n={len(a['rejected'])})", color="tab:red")
    ax.set_xlabel("reward")
    ax.set_ylabel("responses")
    ax.set_title(f"Rewards of chosen vs rejected — {result.name}")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_reward_vs_length(result: EvalResult, path: Path) -> bytes | None:
    a = result.arrays
    if "chosen_len" not in a:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.scatter(a["chosen_len"], a["chosen"], s=12, alpha=0.6, label="chosen", color="tab:green")
    ax.scatter(a["rejected_len"], a["rejected"], s=12, alpha=0.6, label="rejected", color="tab:red")
    rho = result.metrics.get("pairs", {}).get("length_bias", {}).get("spearman")
    ax.set_title(f"Reward vs response length — {result.name}"
                 + (f" (Spearman {rho:.3f})" if rho is not None and math.isfinite(rho) else ""))
    ax.set_xlabel("response length (characters)")
    ax.set_ylabel("reward")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _subset_scores(r: EvalResult) -> dict[str, float]:
    if "pairs" in r.metrics:
        return {k: v["accuracy"] for k, v in r.metrics["pairs"]["subsets"].items()}
    if "kway" in r.metrics:
        return {k: v["score"] for k, v in r.metrics["kway"]["subsets"].items()}
    return {}


def plot_subsets(results: Sequence[EvalResult], path: Path) -> bytes | None:
    """Per-subset accuracy (pairs) or RB2 score (k-way): horizontal grouped bars, one colour per model."""
    scores = [(r.name, _subset_scores(r)) for r in results]
    scores = [(n, sc) for n, sc in scores if sc]
    names = sorted({s for _, sc in scores for s in sc}, reverse=True)
    if not names:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, max(3.0, 0.28 * len(names) * len(scores) + 1.6)))
    height = 0.8 / len(scores)
    y = np.arange(len(names))
    for k, (model, sc) in enumerate(scores):
        ax.barh(y - (k - (len(scores) - 1) / 2) * height, [sc.get(s, np.nan) for s in names], height, label=model)
    ax.set_yticks(y, names)
    kway = any("kway" in r.metrics for r in results)
    ax.set_xlabel("RB2 score" if kway else "pairwise accuracy (ties wrong)")
    ax.set_xlim(0, 1.0)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title("Per-subset " + ("RB2 score (Ties: weighted formula)" if kway else "accuracy"))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(4, len(scores)))
    return save_figure(fig, path)


def plot_rv_per_prompt(results: Sequence[EvalResult], path: Path) -> bytes | None:
    """Distribution over prompts of the within-prompt variance of globally standardized rewards, per model."""
    data = [(r.name, np.array(r.metrics["teacher"]["reward_variance_per_prompt"], dtype=float))
            for r in results if "teacher" in r.metrics]
    if not data:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(data) + 2), 4.2))
    vals = [d[np.isfinite(d)] for _, d in data]
    ax.boxplot(vals, showfliers=False)
    ax.set_xticks(np.arange(1, len(data) + 1), [n for n, _ in data])
    rng = np.random.default_rng(0)
    for k, v in enumerate(vals, start=1):
        ax.scatter(k + rng.uniform(-0.15, 0.15, size=v.size), v, s=14, alpha=0.6)
        ax.plot([k - 0.3, k + 0.3], [v.mean()] * 2, color="black", lw=2)
    ax.set_ylabel("within-prompt variance of standardized reward")
    ax.set_xlabel("reward model (black bar = RV, the mean over prompts)")
    ax.set_title("Reward variance per prompt under the policy")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
