"""`rewardlab judge`: a generative judge on preference pairs (:mod:`rewardlab.evaluate.judging`). Imports only typer
at module level."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.data.cli import SPLIT_HELP
from rewardlab.models.device import device_option, dtype_option


def judge(
    spec: str = typer.Argument(..., help="A judge spec: judge:MODEL[:pairwise|pointwise][:KEY=VALUE,...]."),
    data: Path = typer.Option(..., "--data", help="Preference pairs (chosen/rejected)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSON with the numbers (written atomically)."),
    max_pairs: int | None = typer.Option(None, help="Use only the first N pairs."),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
    device: str = device_option("Where a local judge model runs (an openai/ judge runs remotely)."),
    dtype: str = dtype_option("The local judge model's weights."),
) -> None:
    """Run a generative judge on preference pairs: accuracy, swap-consistency, position bias, label mass."""
    import json

    from rewardlab.evaluate.judging import judge_pairs
    from rewardlab.io import check_not_an_input, check_output_file, spec_paths

    if output is not None:  # before the judge runs: a bad path must not cost its hours
        check_output_file(output, "--output")
        check_not_an_input(output, {"--data": data, "SPEC": spec_paths(spec)})
    out = judge_pairs(spec, data, max_pairs=max_pairs, split=split, skip_invalid=skip_invalid, device=device,
                      dtype=dtype, output=output)
    typer.echo(json.dumps(out, indent=2))


def register(app: typer.Typer) -> None:
    app.command("judge")(judge)
