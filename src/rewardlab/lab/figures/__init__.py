"""Figures of the lab report, one module per experiment. Each ``figures(data, out, claims)`` reads an experiment's
``data``, writes PNGs into ``out`` and returns ``[(filename, caption)]``: the caption says what is plotted and how to
read it, in neutral words, and then what this run found — generated from the experiment's claims, never fixed text.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

NAMES = ("razin", "gao", "coste", "par", "transformer", "two_groups", "stepwise")


def figure_function(experiment: str) -> Callable | None:
    """The ``figures`` function of an experiment (imports matplotlib), or None if it has none."""
    if experiment not in NAMES:
        return None
    return import_module(f"rewardlab.lab.figures.{experiment}").figures


def figure_table(experiment: str) -> Callable | None:
    """The experiment's ``table(data) -> html`` shown above its figures, if it has one."""
    fn = figure_function(experiment)
    return getattr(import_module(f"rewardlab.lab.figures.{experiment}"), "table", None) if fn else None
