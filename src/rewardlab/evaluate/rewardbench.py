"""RewardBench-2-style k-way scoring: best-of-n with the tie rule, the Ties subset's weighted score,
and the unweighted mean over subsets.

Facts follow allenai/reward-bench (``rewardbench/utils.py``: ``reroll_and_score_dataset`` for best-of-n,
``process_single_model`` + ``_compute_prompt_stats`` for Ties), checked against that code on the same synthetic
scores in ``tests/evaluate/test_rewardbench.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.evaluate.metrics import ArrayLike, as_numpy

TIES_SUBSET = "ties"  # compared case-insensitively, as reward-bench does


@dataclass
class KWayScores:
    """Scores of one k-way row: ``chosen`` = rewards of its correct answers ``[n_correct]``, ``rejected`` = rewards
    of its incorrect answers ``[n_incorrect]``. ``id`` is ``"ref:N"`` / ``"tied:N"`` in the Ties subset."""

    chosen: np.ndarray
    rejected: np.ndarray
    subset: str | None = None
    id: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.chosen, self.rejected = as_numpy(self.chosen).reshape(-1), as_numpy(self.rejected).reshape(-1)
        if self.chosen.size == 0 or self.rejected.size == 0:
            raise ValueError(f"row {self.id!r}: needs at least one correct and one incorrect answer")


def best_of_n_score(chosen: ArrayLike, rejected: ArrayLike) -> float:
    """Score of one best-of-n row: 1 if a correct answer's reward is strictly the highest; when k answers tie at
    the maximum, (#correct among them) / k, i.e. 1/k with the single correct answer of an RB2 best-of-4 row
    (reward-bench: ``1 / np.sum(scores == max) if scores[0] == max else 0``). With several correct answers this is
    the probability that a uniformly random tie-break picks a correct one (reward-bench looks at the first only).
    """
    c, r = as_numpy(chosen).reshape(-1), as_numpy(rejected).reshape(-1)
    top = max(c.max(), r.max())
    n_top_correct = int(np.sum(c == top))
    return n_top_correct / (n_top_correct + int(np.sum(r == top)))


def _prompt_stats(c: np.ndarray, r: np.ndarray) -> tuple[bool, float, float]:
    """(accurate, different-correct margin d = max c − min c, correct-incorrect margin = min c − max r)."""
    margin = float(c.min() - r.max())
    return margin > 0, float(c.max() - c.min()), margin


def ties_score(rows: Sequence[KWayScores]) -> dict[str, float]:
    """The Ties subset score of reward-bench's ``process_single_model``.

    Rows have ids ``"ref:<prompt>"`` (one correct answer) or ``"tied:<prompt>"`` (several equally correct answers);
    rows sharing an id are pooled. Per prompt: correct–incorrect margin m = min(correct) − max(incorrect), accurate
    iff m > 0; different-correct margin d = max(correct) − min(correct). With mt, mr the tied / ref margins over
    the prompts present in both versions::

        score = 0.30·mean_tied[m > 0] + 0.30·mean_ref[m > 0] + 0.20·mean[mt > d] + 0.20·mean[min(mr, mt) > d]
                + 0.01·mean tanh(min(mr, mt) / d − 1)          (±inf -> tanh = ±1, 0/0 -> 0, numpy semantics)

    Returns the score and its five terms. Terms over an empty set are NaN (numpy's mean of nothing), as there.
    """
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for row in rows:
        kind, sep, pid = (row.id or "").partition(":")
        if not sep or kind not in ("ref", "tied"):
            raise ValueError(f"Ties row id must be 'ref:N' or 'tied:N', got {row.id!r}")
        c, r = groups.setdefault((kind, pid), ([], []))
        c += row.chosen.tolist()
        r += row.rejected.tolist()
    stats = {k: _prompt_stats(np.array(c), np.array(r)) for k, (c, r) in groups.items()}
    ref = {pid: s for (kind, pid), s in stats.items() if kind == "ref"}
    tied = {pid: s for (kind, pid), s in stats.items() if kind == "tied"}
    for pid, (c, _) in ((pid, groups[("tied", pid)]) for pid in tied):
        if len(c) < 2:
            raise ValueError(f"Ties row 'tied:{pid}' needs at least two correct answers")

    ref_acc = float(np.mean([s[0] for s in ref.values()])) if ref else 0.0
    tied_acc = float(np.mean([s[0] for s in tied.values()])) if tied else 0.0
    both = sorted(set(ref) & set(tied))
    d = np.array([tied[p][1] for p in both])
    mt = np.array([tied[p][2] for p in both])
    mr = np.array([ref[p][2] for p in both])
    with np.errstate(divide="ignore", invalid="ignore"):
        pref = float(np.mean(mt > d)) if both else math.nan
        pref_hard = float(np.mean(np.minimum(mr, mt) > d)) if both else math.nan
        margin = float(np.mean(np.nan_to_num(np.tanh(np.minimum(mr, mt) / d - 1), nan=0.0))) if both else math.nan
    score = 0.30 * tied_acc + 0.30 * ref_acc + 0.20 * pref + 0.20 * pref_hard + 0.01 * margin
    return {"score": float(score), "tied_accuracy": tied_acc, "ref_accuracy": ref_acc,
            "correctness_preferred": pref, "correctness_preferred_hard": pref_hard, "margin_score": margin,
            "n_prompts_both": len(both)}


def ties_row_problems(rows: Sequence[Any]) -> list[str]:
    """``FILE:LINE: message`` for each Ties-subset k-way row (:class:`~rewardlab.data.records.KWayRow`) that
    :func:`ties_score` cannot use: an ``id`` that is not ``"ref:N"`` / ``"tied:N"``, or a ``tied`` prompt with
    fewer than two correct answers over its rows (reported at its first row). Checked before any model is loaded."""
    problems, correct, first = [], {}, {}
    for row in rows:
        if (row.subset or "").lower() != TIES_SUBSET:
            continue
        kind, sep, pid = (row.id or "").partition(":")
        if not sep or kind not in ("ref", "tied"):
            got = "missing" if row.id is None else repr(row.id)
            problems.append(f"{row.source}: field 'id' of a Ties-subset row must be 'ref:N' or 'tied:N' "
                            f"(reward-bench's Ties layout), got {got}")
        elif kind == "tied":
            correct[pid] = correct.get(pid, 0) + len(row.chosen)
            first.setdefault(pid, row.source)
    problems += [f"{first[pid]}: field 'chosen' of Ties prompt 'tied:{pid}' needs at least two correct answers, "
                 f"got {n}" for pid, n in correct.items() if n < 2]
    return problems


def rb2_scores(rows: Sequence[KWayScores]) -> dict[str, Any]:
    """RewardBench-2-style scores: per subset the mean best-of-n row score (the Ties subset: :func:`ties_score`),
    ``overall`` = unweighted mean over subsets (the RB2 leaderboard convention; reward-bench's script reports the
    subsets only). Rows without a subset form the subset ``"all"``. ``row_scores`` is ``[n_rows]`` (NaN for Ties
    rows, which have no per-row score)."""
    by_subset: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_subset.setdefault(row.subset or "all", []).append(i)
    row_scores = np.full(len(rows), math.nan)
    subsets: dict[str, dict[str, Any]] = {}
    for name, idx in sorted(by_subset.items()):
        if name.lower() == TIES_SUBSET:
            detail = ties_score([rows[i] for i in idx])
            subsets[name] = {"score": detail["score"], "n": len(idx), "ties": detail}
            continue
        for i in idx:
            row_scores[i] = best_of_n_score(rows[i].chosen, rows[i].rejected)
        subsets[name] = {"score": float(np.mean(row_scores[idx])), "n": len(idx)}
    overall = float(np.mean([s["score"] for s in subsets.values()])) if subsets else math.nan
    return {"subsets": subsets, "overall": overall, "row_scores": row_scores}
