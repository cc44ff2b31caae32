"""`rewardlab data validate|stats`."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Validate and describe preference data.", no_args_is_help=True)


@data_app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="JSONL / Parquet files or saved `datasets` directories."),
    max_line_bytes: int = typer.Option(8 * 1024 * 1024, help="Reject JSONL lines longer than this."),
) -> None:
    """Check every row of every file; print ALL problems as FILE:LINE: message (exit 2 if any)."""
    from rewardlab.data.load import load_file
    from rewardlab.errors import UserError

    problems: list[str] = []
    for f in files:
        report = load_file(f, max_line_bytes=max_line_bytes)
        problems += report.problems
        if not report.problems:
            typer.echo(f"{f}: {len(report.rows)} rows OK ({report.schema})")
    if problems:
        raise UserError(*problems)


@data_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="A preference / k-way / rated data file."),
    tokenizer: str | None = typer.Option(None, help="Tokenizer directory for token-length statistics."),
    max_length: int = typer.Option(512, help="Budget for the truncation counts (with --tokenizer)."),
) -> None:
    """Row counts, schema, subsets and (with --tokenizer) token lengths and how many items would be truncated."""
    import statistics

    from rewardlab.data.load import load_file
    from rewardlab.data.records import KWayRow, PreferencePair
    from rewardlab.errors import UserError

    report = load_file(file)
    if report.problems:
        raise UserError(*report.problems)
    typer.echo(f"{file}: {len(report.rows)} rows, schema {report.schema}")
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
