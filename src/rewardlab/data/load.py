"""Load preference data from JSONL, Parquet or a saved `datasets` directory, validating every row first.

All problems in a file are collected and raised together as a :class:`~rewardlab.errors.UserError` whose lines read
``FILE:LINE: message`` (``LINE`` is the 1-based line in JSONL, the 1-based row in Parquet/datasets). With
``skip_invalid`` the bad rows are counted, skipped and written to a report instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.data.records import KWayRow, PreferencePair, Prompt, RatedRow, Row, Source
from rewardlab.data.validate import RowError, parse_row
from rewardlab.errors import UserError

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024


@dataclass
class LoadReport:
    """What loading found: rows kept, schema, and the problems (skipped rows when ``skip_invalid``)."""

    path: str
    schema: str | None = None
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _raw_rows(path: Path, max_line_bytes: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, parsed_value_or_RowError)`` for every non-blank row."""
    if path.is_dir():
        yield from _dataset_rows(path)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise UserError(f"{path}:1: cannot read Parquet file ({e})") from None
        for i, row in enumerate(table.to_pylist(), start=1):
            yield i, row
    else:
        with open(path, "rb") as f:
            for i, raw in enumerate(f, start=1):
                if len(raw) > max_line_bytes:
                    yield i, RowError(f"line is {len(raw)} bytes, over the limit of {max_line_bytes}")
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield i, RowError(f"invalid UTF-8 at byte {e.start}")
                    continue
                if not text.strip():
                    continue
                try:
                    yield i, json.loads(text.rstrip("\r\n"))
                except json.JSONDecodeError as e:
                    yield i, RowError(f"truncated or invalid JSON ({e.msg} at column {e.colno})")


def _dataset_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UserError(f"{path}:1: not a saved `datasets` directory ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise UserError(f"{path}:1: DatasetDict without a 'train' split (splits: {', '.join(ds)})")
        ds = ds["train"]
    yield from enumerate(ds, start=1)


def load_file(path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> LoadReport:
    """Parse and validate every row of one file; never raises for row problems (they go to ``problems``)."""
    p = Path(path)
    report = LoadReport(str(path))
    if not p.exists():
        raise UserError(f"{path}: no such file or directory")
    seen_rows = 0
    for line, value in _raw_rows(p, max_line_bytes):
        seen_rows += 1
        try:
            if isinstance(value, RowError):
                raise value
            schema, record = parse_row(value)
            if report.schema is None:
                report.schema = schema
            elif schema != report.schema:
                raise RowError(f"schema '{schema}' differs from the file's first row ('{report.schema}'): "
                               "schemas mixed within one file")
        except RowError as e:
            report.problems.append(f"{path}:{line}: {e}")
            continue
        record.source = Source(str(path), line)
        report.rows.append(record)
    if seen_rows == 0:
        report.problems.append(f"{path}:1: file is empty (no rows)")
    return report


def load_rows(path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
              skip_invalid: bool = False, skipped_report: str | os.PathLike | None = None) -> list[Row]:
    """Load and validate a file. Raises UserError listing every problem, unless ``skip_invalid``."""
    report = load_file(path, max_line_bytes)
    if report.problems and not skip_invalid:
        raise UserError(*report.problems)
    if report.problems and skip_invalid:
        if skipped_report is not None:
            from rewardlab.io import write_text_atomic

            write_text_atomic(skipped_report, "\n".join(report.problems) + "\n")
        import sys

        print(f"{path}: skipped {len(report.problems)} invalid rows, kept {len(report.rows)}", file=sys.stderr)
        if not report.rows:
            raise UserError(f"{path}:1: no valid rows left after skipping {len(report.problems)} invalid ones")
    return report.rows


def _load_typed(path, kind: type, what: str, **kwargs) -> list:
    rows = load_rows(path, **kwargs)
    if rows and not isinstance(rows[0], kind):
        raise UserError(f"{path}:1: expected {what} rows, found {type(rows[0]).__name__} rows")
    return rows


def load_pairs(path: str | os.PathLike, **kwargs) -> list[PreferencePair]:
    """Preference pairs (plain, implicit-prompt or conversational)."""
    return _load_typed(path, PreferencePair, "preference (prompt/chosen/rejected)", **kwargs)


def load_kway(path: str | os.PathLike, **kwargs) -> list[KWayRow]:
    """k-way rows (RewardBench 2 style)."""
    return _load_typed(path, KWayRow, "k-way (chosen: [...], rejected: [...])", **kwargs)


def load_rated(path: str | os.PathLike, **kwargs) -> list[RatedRow]:
    """Rated rows (HelpSteer2 style)."""
    return _load_typed(path, RatedRow, "rated (response + attributes)", **kwargs)


def load_prompts(path: str | os.PathLike) -> list[Prompt]:
    """Prompts from a JSONL file of ``{"prompt": ...}`` rows, or the unique prompts of any row file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file or directory")
    prompts: list[Prompt] = []
    problems: list[str] = []
    seen: set[str] = set()
    for line, value in _raw_rows(p, DEFAULT_MAX_LINE_BYTES):
        if isinstance(value, RowError):
            problems.append(f"{path}:{line}: {value}")
            continue
        prompt = value.get("prompt") if isinstance(value, dict) else None
        if not (isinstance(prompt, str) and prompt) and not (isinstance(prompt, list) and prompt):
            problems.append(f"{path}:{line}: field 'prompt' missing or not a string/message list")
            continue
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    if problems:
        raise UserError(*problems)
    if not prompts:
        raise UserError(f"{path}:1: file is empty (no prompts)")
    return prompts
