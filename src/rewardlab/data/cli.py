"""`rewardlab data validate|stats`."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Validate and describe preference data.", no_args_is_help=True)


SPLIT_HELP = "Split of a saved DatasetDict directory (default: train, or its only split)."


@data_app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="JSONL (.jsonl.gz), JSON-array, Parquet files or `datasets` dirs."),
    max_line_bytes: int = typer.Option(8 * 1024 * 1024, help="Reject JSONL lines longer than this."),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    max_errors: int = typer.Option(20, help="Print at most this many problems (0: all); all are counted."),
) -> None:
    """Check every row of every file; print the problems as FILE:LINE: message (exit 2 if any)."""
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
        for line in report.summary():
            typer.echo(line)
        if not report.all_problems:
            typer.echo(f"{f}: {report.count} rows OK ({report.schema})")
    if problems:
        raise DataError(problems, summarize(problems, invalid, max_errors, "use --max-errors 0 to list them all"))


@data_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="A preference / k-way / rated data file."),
    tokenizer: str | None = typer.Option(None, help="Tokenizer directory for token-length statistics."),
    max_length: int = typer.Option(512, help="Budget for the truncation counts (with --tokenizer)."),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows (counted) instead of failing."),
) -> None:
    """Row counts, schema, subsets and (with --tokenizer) token lengths and how many items would be truncated."""
    import statistics

    from rewardlab.data.load import accept, load_file
    from rewardlab.data.records import KWayRow, PreferencePair

    report = load_file(file, split=split)
    notes = accept(report, skip_invalid)
    typer.echo(f"{file}: {len(report.rows)} rows, schema {report.schema}")
    for line in notes:
        typer.echo(line)
    subsets: dict[str, int] = {}
    for r in report.rows:
        subsets[getattr(r, "subset", None) or "-"] = subsets.get(getattr(r, "subset", None) or "-", 0) + 1
    if len(subsets) > 1 or "-" not in subsets:
        typer.echo("subsets: " + ", ".join(f"{k}={v}" for k, v in sorted(subsets.items())))
    if tokenizer:
        from transformers import AutoTokenizer

        from rewardlab.data.tokenize import PairEncoder

        tok = AutoTokenizer.from_pretrained(tokenizer)
        full = PairEncoder(tok, max_length=10**9)
        cut = PairEncoder(tok, max_length=max_length)
        lengths = []
        for r in report.rows:
            if isinstance(r, PreferencePair):
                items = [(r.prompt, r.chosen), (r.prompt, r.rejected)]
            elif isinstance(r, KWayRow):
                items = [(r.prompt, x) for x in r.chosen + r.rejected]
            else:
                items = [(r.prompt, r.response)]
            for p, resp in items:
                lengths.append(len(full.encode(p, resp)))
                cut.encode(p, resp)
        q = statistics.quantiles(lengths, n=20) if len(lengths) > 1 else lengths * 19
        typer.echo(f"tokens per item: mean {statistics.fmean(lengths):.1f}, median {statistics.median(lengths)}, "
                   f"p95 {q[18]:.0f}, max {max(lengths)}")
        typer.echo(f"at max_length {max_length}: {cut.stats.summary()}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
