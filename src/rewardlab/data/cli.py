"""`rewardlab data validate|stats|confidence-pairs` (``denoise`` is registered by
:mod:`rewardlab.rewards.strength_cli`)."""

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
    from rewardlab.data.stats import validate_files

    for line in validate_files(files, max_line_bytes, split, max_errors):
        typer.echo(line)


@data_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="A preference / k-way / rated data file."),
    tokenizer: str | None = typer.Option(None, help="Tokenizer directory for token-length statistics."),
    max_length: int = typer.Option(512, help="Budget for the truncation counts (with --tokenizer)."),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows (counted) instead of failing."),
    step_separator: str = typer.Option("\n", help="Stepwise files: the separator after each step (with "
                                       "--tokenizer)."),
) -> None:
    """Row counts, schema, subsets and (with --tokenizer) token lengths and how many items would be truncated.
    Stepwise (PRM) files: steps per solution, step labels and first errors instead."""
    from rewardlab.data.stats import describe_file

    for line in describe_file(file, tokenizer, max_length, split, skip_invalid, step_separator):
        typer.echo(line)


@data_app.command("confidence-pairs")
def confidence_pairs(
    file: Path = typer.Argument(..., help="Preference pairs (prompt/chosen/rejected)."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL of the augmented pairs (two per input pair)."),
    seed: int = typer.Option(0, help="Seed of the appended confidence scores."),
    instruction: str | None = typer.Option(None, help="Text appended to every prompt to ask for the statement "
                                           "('' for none).", show_default="ask for 'Confidence: N', N in 0..10"),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows (counted) instead of failing."),
) -> None:
    """PPO-M's calibrated reward-modeling data (Leng et al. 2024): each pair becomes (chosen + high confidence ≻
    chosen + low) and (rejected + low ≻ rejected + high), scores drawn from 7..10 and 0..3; train a reward model
    on them with `rewardlab train`."""
    from rewardlab.data.confidence import INSTRUCTION, write_confidence_pairs
    from rewardlab.io import check_not_an_input, check_output_file, output_lock

    check_output_file(output, "--output")
    check_not_an_input(output, {"FILE": file})
    with output_lock(output):
        n, rows = write_confidence_pairs(file, output, seed, INSTRUCTION if instruction is None else instruction,
                                         split, skip_invalid)
    typer.echo(f"wrote {rows} pairs ({n} input pairs x 2) to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
