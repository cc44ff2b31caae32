"""Shared look of the lab's figures: matplotlib (Agg), colours, a mean-with-band line, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.dpi": 100, "savefig.bbox": "tight"})
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def band(ax, x, ys: np.ndarray, label: str, color: str, style: str = "-") -> None:
    """Mean line over seeds (axis 0) with a min–max band."""
    ax.plot(x, ys.mean(0), style, color=color, label=label, lw=2)
    if ys.shape[0] > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=0.15, lw=0)
