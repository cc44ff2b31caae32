"""Step-level (process) supervision rows: TRL's stepwise schema and ProcessBench's, as one record type.

Two schemas, detected per row (a file must not mix them):

- ``stepwise`` — TRL's *stepwise supervision* format (the ``PRMTrainer`` input, e.g. ``trl-lib/prm800k``,
  ``trl-lib/math_shepherd``): ``{"prompt": str | messages, "completions": [step, ...], "labels": [bool | float, ...]}``.
  ``labels`` has one entry per step: ``true``/``false`` (correct / wrong step) or a number in [0, 1] (a soft label,
  e.g. Math-Shepherd's Monte Carlo estimate of reaching the right answer from that step). ``labels`` may be left out
  for data that is only scored (training refuses such rows).
- ``processbench`` — ProcessBench (Zheng et al. 2024, ``Qwen/ProcessBench``): ``{"problem": str, "steps": [step,
  ...], "label": int}`` with ``label`` the index of the **first wrong step**, or ``-1`` when every step is correct.
  Steps before it are correct (label 1), the step at it is wrong (0), steps after it carry no label (``None``) —
  ProcessBench annotates only the first error. Optional ``final_answer_correct`` (bool), ``generator``, ``id``.

Both become a :class:`StepwiseExample` with ``step_labels`` (per step: a target P(step correct) in [0, 1], or None
when unlabeled) and ``first_error`` (index of the first step whose label is < 0.5; −1 if none; None when unlabeled).
``final_answer_correct`` (bool, optional, in either schema) marks the outcome for best-of-n evaluation.

Validation (each problem names the field; the loader prefixes ``FILE:LINE:``): steps must be a non-empty list of
strings, each with visible text (an empty step has nothing to score); ``labels`` must have exactly one value per
step, each a bool or a finite number in [0, 1]; ProcessBench's ``label`` an integer in [−1, len(steps) − 1].
Loading goes through :func:`rewardlab.data.read.read_rows` (JSONL, ``.gz``, JSON arrays, Parquet, ``datasets``
dirs) and :func:`rewardlab.data.load.accept` (all problems at once, ``--skip-invalid`` counted skips).

Splitting a response text into steps (:func:`step_spans`, :func:`split_steps`) cuts at every occurrence of the
separator and drops pieces that are only whitespace; a text with no visible step is one (empty) step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.data.load import FileReport, scan_rows
from rewardlab.data.read import data_exists, read_rows
from rewardlab.data.records import Prompt, Source
from rewardlab.data.validate import RowError, _optional_str, _text, _text_or_messages, _type_name
from rewardlab.errors import UserError

STEPWISE_SCHEMAS = ("stepwise", "processbench")


@dataclass
class StepwiseExample:
    """One solution split into steps, with optional per-step labels (see the module docstring)."""

    prompt: Prompt
    steps: list[str]
    step_labels: list[float | None] | None = None
    first_error: int | None = None
    final_answer_correct: bool | None = None
    id: str | None = None
    source: Source | None = field(default=None, compare=False, repr=False)


def first_error_of(labels: list[float | None], threshold: float = 0.5) -> int:
    """Index of the first step whose label is below ``threshold`` (a wrong step), −1 when there is none.
    Unlabeled steps (None) are skipped: ProcessBench leaves the steps after the first error unlabeled."""
    for i, y in enumerate(labels):
        if y is not None and y < threshold:
            return i
    return -1


def _bool(row: dict, name: str) -> bool | None:
    v = row.get(name)
    if v is None or isinstance(v, bool):
        return v
    raise RowError(f"field '{name}' must be true or false, got {_type_name(v)}")


def _steps(row: dict, name: str) -> list[str]:
    v = row.get(name)
    if v is None:
        raise RowError(f"field '{name}' missing" if name not in row else f"field '{name}' is null")
    if not isinstance(v, list) or not v:
        raise RowError(f"field '{name}' must be a non-empty list of step strings, got {_type_name(v)}")
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise RowError(f"field '{name}[{i}]' must be a string, got {_type_name(s)}")
        _text(s, f"{name}[{i}]")
        if not s.strip():
            raise RowError(f"field '{name}[{i}]' is an empty step (nothing to score)")
    return list(v)


def _labels(row: dict, n_steps: int) -> list[float] | None:
    v = row.get("labels")
    if v is None:
        return None
    if not isinstance(v, list):
        raise RowError(f"field 'labels' must be a list with one label per step, got {_type_name(v)}")
    if len(v) != n_steps:
        raise RowError(f"field 'labels' has {len(v)} values for {n_steps} steps (one label per step)")
    out = []
    for i, y in enumerate(v):
        ok = isinstance(y, bool) or (isinstance(y, (int, float)) and math.isfinite(y) and 0 <= y <= 1)
        if not ok:
            raise RowError(f"field 'labels[{i}]' must be true/false or a number in [0, 1], got {y!r}")
        out.append(float(y))
    return out


def detect_stepwise_schema(row: Any) -> str:
    """``stepwise`` (TRL: has ``completions``) or ``processbench`` (has ``steps``); RowError otherwise."""
    if not isinstance(row, dict):
        raise RowError(f"row must be a JSON object, got {_type_name(row)}")
    if "completions" in row:
        return "stepwise"
    if "steps" in row:
        return "processbench"
    raise RowError("not a stepwise row: expected TRL's {prompt, completions, labels} or ProcessBench's "
                   "{problem, steps, label}")


def parse_stepwise_row(row: Any, require_labels: bool = False) -> tuple[str, StepwiseExample]:
    """Validate one parsed row and build its record: ``(schema, example)``; raises RowError naming the field."""
    schema = detect_stepwise_schema(row)
    common = {"id": _optional_str(row, "id"), "final_answer_correct": _bool(row, "final_answer_correct")}
    if schema == "stepwise":
        if row.get("prompt") is None:
            raise RowError("field 'prompt' missing" if "prompt" not in row else "field 'prompt' is null")
        prompt = _text_or_messages(row["prompt"], "prompt")
        steps = _steps(row, "completions")
        labels = _labels(row, len(steps))
        if labels is None and require_labels:
            raise RowError("field 'labels' missing (training needs one label per step)")
        first = first_error_of(labels) if labels is not None else None
        return schema, StepwiseExample(prompt, steps, labels, first, **common)
    problem = row.get("problem")
    if not isinstance(problem, str):
        raise RowError("field 'problem' missing" if "problem" not in row else
                       f"field 'problem' must be a string, got {_type_name(problem)}")
    steps = _steps(row, "steps")
    label = row.get("label")
    if label is None:
        raise RowError("field 'label' missing (index of the first wrong step, or -1)" if "label" not in row
                       else "field 'label' is null")
    if isinstance(label, bool) or not isinstance(label, int) or not -1 <= label < len(steps):
        raise RowError(f"field 'label' must be -1 or a step index 0..{len(steps) - 1}, got {label!r}")
    labels: list[float | None] = [1.0] * len(steps) if label < 0 else \
        [1.0] * label + [0.0] + [None] * (len(steps) - label - 1)
    return schema, StepwiseExample(_text(problem, "problem"), steps, labels, label, **common)


def step_spans(text: str, separator: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the steps of ``text`` cut at ``separator`` (whitespace-only pieces
    dropped; a text without any visible step is one step spanning all of it). ``text[start:end]`` is a step."""
    if not separator:
        raise ValueError("the step separator must be a non-empty string")
    spans, start = [], 0
    while True:
        end = text.find(separator, start)
        stop = len(text) if end < 0 else end
        if text[start:stop].strip():
            spans.append((start, stop))
        if end < 0:
            return spans or [(0, len(text))]
        start = end + len(separator)


def split_steps(text: str, separator: str) -> list[str]:
    """The steps of a response text (see :func:`step_spans`): ``"a\\n\\nb\\n"`` with ``"\\n"`` → ``["a", "b"]``."""
    return [text[a:b] for a, b in step_spans(text, separator)]


@dataclass
class StepwiseReport(FileReport):
    """A stepwise file's :class:`~rewardlab.data.load.FileReport` (``rows``: :class:`StepwiseExample`), with step
    counts."""

    steps: int = 0
    steps_with_separator: int = 0

    def summary(self) -> list[str]:
        lines = super().summary()
        if self.steps_with_separator:
            lines.append(f"{self.path}: {self.steps_with_separator} of {self.steps} steps contain the step "
                         "separator (fine for training on given steps; a response text split at it would cut them)")
        return lines


def _scan(path: str | os.PathLike, max_line_bytes: int, split: str | None, report: StepwiseReport,
          require_labels: bool, separator: str | None) -> Iterator[StepwiseExample]:
    for _, _, ex, _ in scan_rows(path, max_line_bytes, split, report, report.notes,
                                 lambda value: parse_stepwise_row(value, require_labels)):
        report.steps += len(ex.steps)
        if separator:
            report.steps_with_separator += sum(separator in s for s in ex.steps)
        yield ex


def load_stepwise_file(path: str | os.PathLike, max_line_bytes: int = 8 * 1024 * 1024, split: str | None = None,
                       keep_rows: bool = True, require_labels: bool = False,
                       separator: str | None = None) -> StepwiseReport:
    """Parse and validate every row of one file; row problems go to the report (never raised here)."""
    report = StepwiseReport(str(path))
    for ex in _scan(path, max_line_bytes, split, report, require_labels, separator):
        if keep_rows:
            report.rows.append(ex)
    return report


def load_stepwise(path: str | os.PathLike, *, skip_invalid: bool = False,
                  skipped_report: str | os.PathLike | None = None, split: str | None = None,
                  require_labels: bool = False, separator: str | None = None,
                  max_line_bytes: int = 8 * 1024 * 1024, quiet: bool = False) -> list[StepwiseExample]:
    """Load and validate a stepwise file. Raises a DataError listing every problem unless ``skip_invalid`` (then
    the bad rows are counted, skipped and listed in ``skipped_report``). Prints what loading did (stderr)."""
    import sys

    from rewardlab.data.load import accept

    report = load_stepwise_file(path, max_line_bytes, split, require_labels=require_labels, separator=separator)
    for line in accept(report, skip_invalid, skipped_report):
        if not quiet:
            print(line, file=sys.stderr)
    return report.rows


def is_stepwise_file(path: str | os.PathLike, split: str | None = None) -> bool:
    """Whether the first parseable row of ``path`` is a stepwise row (has ``completions`` or ``steps``)."""
    p = Path(path)
    if not data_exists(p):
        return False
    try:
        for _, value in read_rows(p, 8 * 1024 * 1024, split):
            if isinstance(value, dict):
                return "completions" in value or ("steps" in value and "chosen" not in value)
    except UserError:
        return False
    return False
