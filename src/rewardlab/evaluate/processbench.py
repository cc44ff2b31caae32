"""Process-reward-model metrics (pure functions on step scores) and :func:`evaluate_prm`, which computes them all.

**ProcessBench** (Zheng et al. 2024, "ProcessBench: Identifying Process Errors in Mathematical Reasoning"; the
reference scripts are ``code/run_eval_prm_*.py`` in ``QwenLM/ProcessBench``): each solution has ``label`` = index of
its first wrong step, or −1 when all steps are correct. A PRM predicts the first step whose score is below a
threshold (:func:`predict_first_error`; the TRL script's ``argmax == 0`` of a 2-label head is ``σ < 0.5``), else −1.

- ``error_accuracy``   = mean[prediction == label] over the erroneous solutions (label ≥ 0; the exact index counts),
- ``correct_accuracy`` = mean[prediction == −1] over the all-correct solutions (label = −1),
- ``f1`` = 2·a_err·a_corr / (a_err + a_corr), their harmonic mean (0 when both are 0). ProcessBench's overall score
  is the mean of this F1 over its four subsets (:func:`mean_f1`).

**Step-level F1** (:func:`step_f1`): every labeled, scored step is a binary decision "wrong" (score < threshold) vs
its label (< 0.5: wrong); precision/recall/F1 of the ``positive`` class (``error`` by default: detecting wrong
steps), with 0 where a ratio is 0/0 (scikit-learn's ``zero_division=0``).

**Best-of-n accuracy** (:func:`best_of_n_accuracy`): over groups of candidate solutions to one prompt, each with a
correct or incorrect final answer, pick the highest-scoring candidate; accuracy = fraction of groups whose pick is
correct. Ties at the maximum count 1/(number tied) per correct tied candidate (the expected accuracy of a random
tie-break, as RewardBench 2 scores ties). Reported for each aggregation of step scores
(:data:`~rewardlab.rewards.prm.AGGREGATIONS`), with ``oracle`` (some candidate correct) and ``random`` (mean
correctness) as bounds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any


def predict_first_error(step_scores: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first step scored below ``threshold``; −1 when none is. Unscored steps (NaN: dropped by
    truncation) are skipped — the prediction then only covers the steps the model saw."""
    for j, s in enumerate(step_scores):
        if not math.isnan(s) and s < threshold:
            return j
    return -1


def harmonic_f1(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def processbench_scores(predicted: Sequence[int], labels: Sequence[int]) -> dict[str, Any]:
    """ProcessBench accuracies and F1 (see the module docstring); an accuracy is None when its group is empty, and
    the F1 then too."""
    if len(predicted) != len(labels):
        raise ValueError(f"{len(predicted)} predictions for {len(labels)} labels")
    err = [p == y for p, y in zip(predicted, labels) if y != -1]
    cor = [p == -1 for p, y in zip(predicted, labels) if y == -1]
    a_err = sum(err) / len(err) if err else None
    a_cor = sum(cor) / len(cor) if cor else None
    f1 = harmonic_f1(a_err, a_cor) if a_err is not None and a_cor is not None else None
    return {"error_accuracy": a_err, "correct_accuracy": a_cor, "f1": f1, "n_error": len(err), "n_correct": len(cor)}


def mean_f1(results: Sequence[dict[str, Any]]) -> float | None:
    """ProcessBench's overall score: the mean of the subsets' F1 (None if any subset has none)."""
    f1s = [r["f1"] for r in results]
    return None if not f1s or any(f is None for f in f1s) else sum(f1s) / len(f1s)


def step_f1(step_scores: Sequence[Sequence[float]], step_labels: Sequence[Sequence[float | None]],
            threshold: float = 0.5, positive: str = "error") -> dict[str, Any]:
    """Step-level precision/recall/F1 of the ``positive`` class (``error`` or ``correct``) over labeled, scored
    steps; also the counts and the step accuracy."""
    if positive not in ("error", "correct"):
        raise ValueError(f"positive must be 'error' or 'correct', got {positive!r}")
    tp = fp = fn = tn = 0
    for scores, labels in zip(step_scores, step_labels, strict=True):
        for s, y in zip(scores, labels):
            if y is None or math.isnan(s):
                continue
            pred = s < threshold if positive == "error" else s >= threshold
            true = y < 0.5 if positive == "error" else y >= 0.5
            tp += pred and true
            fp += pred and not true
            fn += true and not pred
            tn += not pred and not true
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    n = tp + fp + fn + tn
    return {"positive": positive, "precision": precision, "recall": recall, "f1": harmonic_f1(precision, recall),
            "accuracy": (tp + tn) / n if n else None, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "steps": n}


def best_of_n_accuracy(scores: Sequence[Sequence[float]], correct: Sequence[Sequence[bool]]) -> float | None:
    """Mean over groups of the (tie-aware) correctness of the top-scored candidate; NaN scores rank lowest.
    None when there are no groups."""
    accs = []
    for s, c in zip(scores, correct, strict=True):
        if len(s) != len(c) or not s:
            raise ValueError("each group needs one correctness flag per candidate, and at least one candidate")
        vals = [-math.inf if math.isnan(x) else x for x in s]
        top = max(vals)
        tied = [ok for v, ok in zip(vals, c) if v == top]
        accs.append(sum(tied) / len(tied))
    return sum(accs) / len(accs) if accs else None


def bon_by_aggregation(step_scores: Sequence[Sequence[float]], correct: Sequence[bool],
                       groups: Sequence[str]) -> dict[str, Any]:
    """Best-of-n accuracy under each aggregation for candidates grouped by ``groups`` (a key per candidate, e.g. the
    prompt); only groups with at least two candidates count. Adds ``oracle``, ``random``, ``groups`` and ``n_mean``."""
    from rewardlab.rewards.prm import AGGREGATIONS, aggregate_steps

    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    members = [idx for idx in by.values() if len(idx) >= 2]
    out: dict[str, Any] = {"groups": len(members),
                           "n_mean": sum(map(len, members)) / len(members) if members else None}
    flags = [[bool(correct[i]) for i in idx] for idx in members]
    for method in AGGREGATIONS:
        scores = [[aggregate_steps(step_scores[i], method) for i in idx] for idx in members]
        out[method] = best_of_n_accuracy(scores, flags)
    out["oracle"] = sum(any(f) for f in flags) / len(flags) if flags else None
    out["random"] = sum(sum(f) / len(f) for f in flags) / len(flags) if flags else None
    return out


def evaluate_prm(reward, examples: Sequence, threshold: float = 0.5) -> dict[str, Any]:
    """Score ``examples`` (:class:`~rewardlab.data.stepwise.StepwiseExample`) with a
    :class:`~rewardlab.rewards.prm.PRMReward` at their given steps and compute every metric the data allows:
    ProcessBench (rows with a known first error), step-level F1 (rows with step labels), best-of-n accuracy per
    aggregation (rows with ``final_answer_correct``, grouped by prompt). ``truncation`` counts what encoding
    dropped; predictions ignore unscored steps."""
    before = reward.encoder.stats.as_dict()
    scores = reward.score_steps([e.prompt for e in examples], [e.steps for e in examples])
    after = reward.encoder.stats.as_dict()
    out: dict[str, Any] = {"examples": len(examples), "threshold": threshold,
                           "truncation": {k: after[k] - before[k] for k in after}}
    known = [(s, e.first_error) for s, e in zip(scores, examples) if e.first_error is not None]
    if known:
        out["processbench"] = processbench_scores([predict_first_error(s, threshold) for s, _ in known],
                                                  [y for _, y in known])
    labeled = [(s, e.step_labels) for s, e in zip(scores, examples) if e.step_labels is not None]
    if labeled:
        out["step_f1"] = {pos: step_f1([s for s, _ in labeled], [y for _, y in labeled], threshold, pos)
                          for pos in ("error", "correct")}
    outcome = [(s, e) for s, e in zip(scores, examples) if e.final_answer_correct is not None]
    if outcome:
        out["best_of_n"] = bon_by_aggregation([s for s, _ in outcome], [e.final_answer_correct for _, e in outcome],
                                              [json.dumps(e.prompt, sort_keys=True) for _, e in outcome])
    return out
