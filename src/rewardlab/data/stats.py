"""What ``rewardlab data validate`` and ``data stats`` report about data files, as lines of text:
:func:`validate_files` and :func:`describe_file` (preference, k-way and rated rows; stepwise PRM rows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def validate_files(files: list[Path], max_line_bytes: int = 8 * 1024 * 1024, split: str | None = None,
                   max_errors: int = 20) -> Iterator[str]:
    """Check every row of every file, yielding each file's summary lines (``FILE: N rows OK (schema)`` when it has
    no problem); then raise a :class:`~rewardlab.data.load.DataError` listing every problem as ``FILE:LINE:
    message`` (at most ``max_errors`` shown, 0: all) if there were any."""
    from rewardlab.data.load import DataError, load_file, summarize
    from rewardlab.data.stepwise import is_stepwise_file, load_stepwise_file
    from rewardlab.errors import UserError

    problems: list[str] = []
    invalid = 0
    for f in files:
        try:
            if is_stepwise_file(f, split):  # TRL stepwise / ProcessBench rows (data/stepwise.py)
                report = load_stepwise_file(f, max_line_bytes, split, keep_rows=False)
            else:
                report = load_file(f, max_line_bytes=max_line_bytes, split=split, keep_rows=False)
        except UserError as e:  # the file as a whole (missing, unreadable): report it with the others
            problems += e.problems
            continue
        problems += report.all_problems
        invalid += len(report.problems)
        yield from report.summary()
        if not report.all_problems:
            yield f"{f}: {report.count} rows OK ({report.schema})"
    if problems:
        raise DataError(problems, summarize(problems, invalid, max_errors, "use --max-errors 0 to list them all"))


def describe_file(file: Path, tokenizer: str | None = None, max_length: int = 512, split: str | None = None,
                  skip_invalid: bool = False, step_separator: str = "\n") -> Iterator[str]:
    """Lines: row counts, schema, subsets and (with ``tokenizer``) token lengths and how many items would be
    truncated at ``max_length``. Stepwise (PRM) files: steps per solution, step labels and first errors instead."""
    from rewardlab.data.load import accept, load_file
    from rewardlab.data.stepwise import is_stepwise_file

    if is_stepwise_file(file, split):
        yield from _stepwise_stats(file, tokenizer, max_length, split, skip_invalid, step_separator)
        return
    report = load_file(file, split=split)
    notes = accept(report, skip_invalid)
    yield f"{file}: {len(report.rows)} rows, schema {report.schema}"
    yield from notes
    subsets: dict[str, int] = {}
    for r in report.rows:
        subsets[getattr(r, "subset", None) or "-"] = subsets.get(getattr(r, "subset", None) or "-", 0) + 1
    if len(subsets) > 1 or "-" not in subsets:
        yield "subsets: " + ", ".join(f"{k}={v}" for k, v in sorted(subsets.items()))
    if tokenizer:
        from transformers import AutoTokenizer

        from rewardlab.data.load import DataError, summarize
        from rewardlab.data.records import row_items
        from rewardlab.data.tokenize import PairEncoder, template_problems

        tok = AutoTokenizer.from_pretrained(tokenizer)
        full = PairEncoder(tok, max_length=10**9)
        cut = PairEncoder(tok, max_length=max_length)
        if problems := template_problems(full, report.rows):
            raise DataError(problems, summarize(problems, 0))
        lengths = []
        for r in report.rows:
            for _, resp in row_items(r):
                lengths.append(len(full.encode(r.prompt, resp)))
                cut.encode(r.prompt, resp)
        yield f"tokens per item: {spread(lengths)}"
        yield f"at max_length {max_length}: {cut.stats.summary()}"


def spread(values: list[int]) -> str:
    """``mean m, median m, p95 p, max x`` of ``values``."""
    import statistics

    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else values * 19  # within range
    return (f"mean {statistics.fmean(values):.1f}, median {statistics.median(values)}, p95 {q[18]:.0f}, "
            f"max {max(values)}")


def _stepwise_stats(file: Path, tokenizer: str | None, max_length: int, split: str | None, skip_invalid: bool,
                    separator: str) -> Iterator[str]:
    """`data stats` of a TRL-stepwise / ProcessBench file: steps, step labels, first errors, token lengths."""
    from rewardlab.data.load import accept
    from rewardlab.data.stepwise import load_stepwise_file

    report = load_stepwise_file(file, split=split, separator=separator)
    notes = accept(report, skip_invalid)
    rows = report.rows
    yield f"{file}: {len(rows)} rows, schema {report.schema}"
    yield from notes
    yield f"steps per solution: {spread([len(r.steps) for r in rows])}"
    labels = [y for r in rows for y in (r.step_labels or [None] * len(r.steps))]
    good = sum(y is not None and y >= 0.5 for y in labels)
    bad = sum(y is not None and y < 0.5 for y in labels)
    yield (f"steps: {len(labels)}, labelled correct (>= 0.5) {good}, wrong {bad}, "
           f"unlabelled {len(labels) - good - bad}")
    firsts = [r.first_error for r in rows]
    wrong = [f for f in firsts if f is not None and f >= 0]
    at = f" (first wrong step, 0-based: {spread(wrong)})" if wrong else ""
    yield (f"solutions: {firsts.count(-1)} all correct, {len(wrong)} with a wrong step{at}, "
           f"{firsts.count(None)} unlabelled")
    if tokenizer:
        from transformers import AutoTokenizer

        from rewardlab.data.step_encode import StepEncoder, StepFormat

        tok = AutoTokenizer.from_pretrained(tokenizer)
        decoder = getattr(tok, "cls_token_id", None) is None  # encoders (BERT-like) read [CLS] ... [SEP]
        fmt = StepFormat(separator)
        full = StepEncoder(tok, 10**9, fmt, decoder=decoder)
        cut = StepEncoder(tok, max_length, fmt, decoder=decoder)
        lengths = [len(full.encode(r.prompt, r.steps).ids) for r in rows]
        for r in rows:
            cut.encode(r.prompt, r.steps)
        yield f"tokens per solution: {spread(lengths)}"
        yield f"at max_length {max_length}: {cut.stats.summary()}"
