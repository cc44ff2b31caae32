"""`rewardlab export` — a reward model as a standard transformers ``*ForSequenceClassification`` directory."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    model: str = typer.Argument(..., help="A rewardlab checkpoint dir (or an imported transformers / OpenRLHF RM)."),
    out: Path = typer.Argument(..., help="New output directory."),
    fmt: str = typer.Option("hf", "--format", help="hf: transformers *ForSequenceClassification (vLLM, OpenRLHF, "
                            "TRL load it)."),
    drop_bias: bool = typer.Option(False, "--drop-bias", help="Export a head bias that cannot be folded into the "
                                   "final norm by dropping it (scores shift by a constant; preferences unchanged)."),
) -> None:
    """Write MODEL so that AutoModelForSequenceClassification.from_pretrained(OUT) loads it with the same scores."""
    from rewardlab.errors import UserError
    from rewardlab.models.export import export_hf

    if fmt != "hf":
        raise UserError(f"--format {fmt!r}: only 'hf' is supported")
    path = export_hf(model, out, drop_bias=drop_bias)
    typer.echo(f"exported {model} -> {path} (AutoModelForSequenceClassification.from_pretrained('{path}'))")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
