"""Load preference data (JSONL, ``.jsonl.gz``, JSON arrays, Parquet, saved `datasets` dirs), validating every row.

All problems in a file are collected and raised together as a :class:`DataError` (a
:class:`~rewardlab.errors.UserError`) whose lines read ``FILE:LINE: message`` (``LINE`` is the 1-based line in
JSONL, the 1-based row elsewhere); the display is capped at :data:`MAX_SHOWN` problems and ends with a summary that
points to ``rewardlab data validate`` and ``--skip-invalid``. With ``skip_invalid`` the bad rows are counted,
skipped and every one is written to a report instead. Problems of a file as a whole (empty, every weight 0) are
never skipped. Loading prints (stderr) what it did to the data: the split it used, how many pairs have an empty
response, how many prompts it extracted from implicit-prompt rows, how many rows it skipped.

:func:`iter_pairs` streams: one validating pass that keeps no rows, then a second pass that yields them;
:class:`StreamedPairs` reads a file once, validating as it yields.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.data.read import data_exists, read_rows
from rewardlab.data.records import KWayRow, PreferencePair, Prompt, RatedRow, Row, Source
from rewardlab.data.validate import RowError, has_empty_response, parse_prompt, parse_row, prompt_column_unused
from rewardlab.errors import UserError

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_SHOWN = 20
_KINDS: dict[type, tuple[str, tuple[str, ...]]] = {
    PreferencePair: ("preference (prompt/chosen/rejected)", ("pair-plain", "pair-conversational", "pair-implicit")),
    KWayRow: ("k-way (chosen: [...], rejected: [...])", ("kway",)),
    RatedRow: ("rated (response + attributes)", ("rated",)),
}


class DataError(UserError):
    """Problems of data files: ``problems`` holds every one, ``lines()`` the capped display (see :func:`summarize`)."""

    def __init__(self, problems: list[str], shown: list[str]):
        super().__init__(*problems)
        self.shown = shown

    def lines(self) -> list[str]:
        return self.shown


def summarize(problems: list[str], invalid_rows: int, max_shown: int = MAX_SHOWN,
              list_all: str = "run `rewardlab data validate FILE` to list them all") -> list[str]:
    """The first ``max_shown`` problems (0: all), then one line that says what is hidden and how to go on.

    ``invalid_rows`` counts the problems that ``--skip-invalid`` would skip; the last line points to it when > 0.
    """
    shown = problems if max_shown <= 0 else problems[:max_shown]
    skip = "use --skip-invalid to skip invalid rows (each skipped row is counted and listed in a report)"
    hidden = len(problems) - len(shown)
    if hidden:
        more = f"... and {hidden} more problems ({len(problems)} in all); {list_all}"
        return shown + [f"{more}, or {skip}" if invalid_rows else more]
    if invalid_rows:
        return shown + [f"{invalid_rows} invalid rows: fix them, or {skip}"]
    return shown


@dataclass
class FileReport:
    """What loading one file found, whatever its family: rows kept, schema (of its first valid row), the row count,
    and the problems — row problems (skippable with --skip-invalid) and file problems (never skippable)."""

    path: str
    schema: str | None = None
    rows: list = field(default_factory=list)
    count: int = 0
    first_line: int = 1
    problems: list[str] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def all_problems(self) -> list[str]:
        return self.file_problems + self.problems

    def summary(self) -> list[str]:
        """What loading did to the data, one line each (the family adds its own counts)."""
        return list(self.notes)


@dataclass
class LoadReport(FileReport):
    """A preference file's :class:`FileReport` (``rows``: :data:`Row`), with what loading did to the data."""

    empty_responses: int = 0
    empty_lines: list[int] = field(default_factory=list)  # the first few rows with an empty response
    extracted_prompts: int = 0
    unused_prompts: int = 0
    weighted: int = 0

    def summary(self) -> list[str]:
        """What loading did to the data, one line each (split used, empty responses, extracted prompts)."""
        noun = "pairs" if self.schema and self.schema.startswith("pair") else "rows"
        lines = super().summary()
        if self.empty_responses:
            where = ", ".join(f"{self.path}:{line}" for line in self.empty_lines)
            more = self.empty_responses - len(self.empty_lines)
            lines.append(f"{where}{f' (and {more} more)' if more else ''}: {self.empty_responses} {noun} have an "
                         "empty response (kept as empty text)")
        extracted = self.extracted_prompts - self.unused_prompts
        if extracted:
            lines.append(f"{self.path}: {extracted} pairs have no 'prompt' field: their prompt is the "
                         "start that chosen and rejected share")
        if self.unused_prompts:
            lines.append(f"{self.path}: {self.unused_prompts} pairs have a 'prompt' string and chosen/rejected "
                         "conversations that hold the prompt turns: their prompt is the turns those share (as TRL's "
                         "maybe_extract_prompt), the 'prompt' column is not used")
        return lines


def scan_rows(path: str | os.PathLike, max_line_bytes: int, split: str | None, report: FileReport,
              notes: list[str] | None, parse: Callable[[Any], tuple[str, Any]]) -> Iterator[tuple[int, str, Any, Any]]:
    """Parse each row of a file with ``parse`` (``value -> (schema, record)``, raising RowError), counting into
    ``report``; yield ``(line, schema, record, value)`` for the valid ones, each record's ``source`` set.

    A row whose schema differs from the file's first valid row is a problem too; an empty file is a file problem.
    """
    p = Path(path)
    if not data_exists(p):
        raise UserError(f"{path}: no such file or directory")
    seen = 0
    for line, value in read_rows(p, max_line_bytes, split, notes):
        seen += 1
        try:
            if isinstance(value, RowError):
                raise value
            schema, record = parse(value)
            if report.schema is None:
                report.schema, report.first_line = schema, line
            elif schema != report.schema:
                raise RowError(f"schema '{schema}' differs from the file's first row ('{report.schema}'): "
                               "schemas mixed within one file")
        except RowError as e:
            report.problems.append(f"{path}:{line}: {e}")
            continue
        record.source = Source(str(path), line)
        report.count += 1
        yield line, schema, record, value
    if seen == 0:
        report.file_problems.append(f"{path}:1: file is empty (no rows)")


def _scan(path: str | os.PathLike, max_line_bytes: int, split: str | None, report: LoadReport,
          notes: list[str] | None) -> Iterator[tuple[int, Row]]:
    """Parse and validate each row, counting into ``report``; yield ``(line, record)`` for the valid ones.

    Each row goes through :func:`~rewardlab.data.validate.parse_row`, the one place that validates.
    """
    for line, schema, record, value in scan_rows(path, max_line_bytes, split, report, notes, parse_row):
        if has_empty_response(record):
            report.empty_responses += 1
            if len(report.empty_lines) < 3:
                report.empty_lines.append(line)
        if isinstance(record, PreferencePair):
            report.extracted_prompts += schema == "pair-implicit" and record.prompt != ""
            report.unused_prompts += schema == "pair-implicit" and record.prompt != "" and prompt_column_unused(value)
            report.weighted += record.weight > 0
        yield line, record
    if report.count and report.schema.startswith("pair") and not report.weighted:
        report.file_problems.append(f"{path}:{report.first_line}: every pair has 'weight' 0 (nothing to train on)")


def load_file(path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, split: str | None = None,
              keep_rows: bool = True) -> LoadReport:
    """Parse and validate every row of one file; never raises for row problems (they go to the report)."""
    report = LoadReport(str(path))
    for _, record in _scan(path, max_line_bytes, split, report, report.notes):
        if keep_rows:
            report.rows.append(record)
    return report


def accept(report: FileReport, skip_invalid: bool = False, skipped_report: str | os.PathLike | None = None,
           kind: type | None = None) -> list[str]:
    """Raise for the problems of a loaded file (all of them, or only whole-file ones when ``skip_invalid``), write
    the skipped-rows report, and return the lines that say what loading did (skips, split, counts) for printing."""
    path = report.path
    fatal = report.file_problems + ([] if skip_invalid else report.problems)
    if fatal:
        invalid = 0 if skip_invalid else len(report.problems)
        raise DataError(fatal, summarize(fatal, invalid, list_all=f"run `rewardlab data validate {path}` to list "
                                         "them all"))
    lines = []
    if report.problems:
        if skipped_report is not None:
            from rewardlab.io import write_text_atomic

            write_text_atomic(skipped_report, "\n".join(report.problems) + "\n")
        where = f" (listed in {skipped_report})" if skipped_report is not None else ""
        lines.append(f"{path}: skipped {len(report.problems)} invalid rows{where}, kept {report.count}")
        if not report.count:
            raise UserError(f"{path}:1: no valid rows left after skipping {len(report.problems)} invalid ones")
    if kind is not None and report.schema not in _KINDS[kind][1]:
        raise UserError(f"{path}:{report.first_line}: expected {_KINDS[kind][0]} rows, found {report.schema} rows")
    return lines + report.summary()


def _accept(report: LoadReport, skip_invalid: bool, skipped_report: str | os.PathLike | None,
            kind: type | None) -> None:
    for line in accept(report, skip_invalid, skipped_report, kind):
        print(line, file=sys.stderr)


def load_rows(path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
              skip_invalid: bool = False, skipped_report: str | os.PathLike | None = None,
              split: str | None = None) -> list[Row]:
    """Load and validate a file. Raises a DataError listing every problem, unless ``skip_invalid``."""
    report = load_file(path, max_line_bytes, split)
    _accept(report, skip_invalid, skipped_report, None)
    return report.rows


def iter_pairs(path: str | os.PathLike, *, skip_invalid: bool = False,
               skipped_report: str | os.PathLike | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               split: str | None = None) -> Iterator[PreferencePair]:
    """Stream the preference pairs of a file without holding them in memory.

    Calling it validates the whole file at once, in a pass that keeps no rows, and raises exactly the UserError that
    :func:`load_pairs` would (with the same ``skip_invalid`` / report handling and printed counts). The returned
    iterator then reads the file again and yields the valid pairs in file order; call ``iter_pairs`` again for
    another epoch.
    """
    report = LoadReport(str(path))
    for _ in _scan(path, max_line_bytes, split, report, report.notes):
        pass
    _accept(report, skip_invalid, skipped_report, PreferencePair)
    return _second_pass(path, max_line_bytes, split, report.count)


def _second_pass(path: str | os.PathLike, max_line_bytes: int, split: str | None,
                 expected: int) -> Iterator[PreferencePair]:
    again = LoadReport(str(path))
    for _, record in _scan(path, max_line_bytes, split, again, None):
        yield record  # type: ignore[misc]  # the first pass checked the schema
    if again.count != expected:
        raise UserError(f"{path}: file changed while reading it ({expected} valid rows, then {again.count})")


class StreamedPairs:
    """The pairs of a data file for one consumer that reads them once (a trainer encoding them): iterating it reads
    the file in **one** pass that validates each row as it yields it (the rows are not held), and when the pass ends
    raises exactly what :func:`load_pairs` would — the file's problems, or with ``skip_invalid`` the skipped-rows
    report and counts — so the consumer learns of a bad file before it writes anything. A file of other rows (k-way,
    rated) yields nothing and fails at the end the same way. The file must exist when this is made; iterating twice
    is refused (hold the pairs in a list to use them twice, as a 'tiny' base does)."""

    def __init__(self, path: str | os.PathLike, split: str | None = None, skip_invalid: bool = False,
                 skipped_report: str | os.PathLike | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES):
        if not data_exists(Path(path)):
            raise UserError(f"{path}: no such file or directory")
        self.path, self.split, self.max_line_bytes = path, split, max_line_bytes
        self.skip_invalid, self.skipped_report = skip_invalid, skipped_report
        self._read = False

    def __iter__(self) -> Iterator[PreferencePair]:
        if self._read:
            raise RuntimeError(f"{self.path}: its pairs stream once; keep them in a list to iterate them again")
        self._read = True
        return self._pass()

    def _pass(self) -> Iterator[PreferencePair]:
        report = LoadReport(str(self.path))
        for _, record in _scan(self.path, self.max_line_bytes, self.split, report, report.notes):
            if report.schema in _KINDS[PreferencePair][1]:
                yield record  # type: ignore[misc]
        _accept(report, self.skip_invalid, self.skipped_report, PreferencePair)


def _load_typed(path: str | os.PathLike, kind: type, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                skip_invalid: bool = False, skipped_report: str | os.PathLike | None = None,
                split: str | None = None) -> list:
    report = load_file(path, max_line_bytes, split)
    _accept(report, skip_invalid, skipped_report, kind)
    return report.rows


def load_pairs(path: str | os.PathLike, **kwargs) -> list[PreferencePair]:
    """Preference pairs (plain, implicit-prompt or conversational); same arguments as :func:`load_rows`."""
    return _load_typed(path, PreferencePair, **kwargs)


def load_kway(path: str | os.PathLike, **kwargs) -> list[KWayRow]:
    """k-way rows (RewardBench 2 style)."""
    return _load_typed(path, KWayRow, **kwargs)


def load_rated(path: str | os.PathLike, **kwargs) -> list[RatedRow]:
    """Rated rows (HelpSteer2 style); ``{prompt, response}`` rows (schema ``response``) are refused here."""
    return _load_typed(path, RatedRow, **kwargs)


def load_prompts(path: str | os.PathLike, split: str | None = None) -> list[Prompt]:
    """Prompts from a file of ``{"prompt": ...}`` rows, or the unique prompts of any row file."""
    p = Path(path)
    if not data_exists(p):
        raise UserError(f"{path}: no such file or directory")
    prompts: list[Prompt] = []
    problems: list[str] = []
    seen: set[str] = set()
    for line, value in read_rows(p, DEFAULT_MAX_LINE_BYTES, split):
        try:
            if isinstance(value, RowError):
                raise value
            prompt = parse_prompt(value)
        except RowError as e:
            problems.append(f"{path}:{line}: {e}")
            continue
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    if problems:
        raise DataError(problems, summarize(problems, 0, list_all=f"run `rewardlab data validate {path}` to see "
                                            "the rows"))
    if not prompts:
        raise UserError(f"{path}:1: file is empty (no prompts)")
    return prompts
