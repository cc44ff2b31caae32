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
    from rewardlab.io import check_not_an_input, output_lock
    from rewardlab.models.export import export_hf

    if fmt != "hf":
        raise UserError(f"--format {fmt!r}: only 'hf' is supported")
    check_not_an_input(out, {"MODEL": model}, "OUT")
    with output_lock(out, "OUT"):  # one writer: two exports would share one temp directory
        path = export_hf(model, out, drop_bias=drop_bias)
    typer.echo(f"exported {model} -> {path} (AutoModelForSequenceClassification.from_pretrained('{path}'))")


def show(
    file: Path = typer.Argument(..., help="A data file (pairs, k-way rows, rated rows)."),
    model: str = typer.Option(..., "--model", help="A rewardlab checkpoint, a transformers/OpenRLHF reward model, or "
                              "a base model dir (shows what `train --base` would feed it)."),
    n: int = typer.Option(3, "-n", help="Rows to show."),
    split: str | None = typer.Option(None, "--split", help="Split of a DatasetDict directory (default: train)."),
    max_length: int | None = typer.Option(None, help="Token budget (default: the model's)."),
    chat_template: Path | None = typer.Option(None, "--chat-template", help="Jinja chat template file to use "
                                              "instead of the tokenizer's."),
) -> None:
    """Print the exact text each item is rendered to for MODEL (special tokens included) and its token count."""
    from rich.console import Console
    from rich.markup import escape

    from rewardlab.models.show import show_rendering

    shown = show_rendering(file, model, n=n, split=split, max_length=max_length, chat_template=chat_template)
    console = Console(highlight=False)
    console.print(f"[bold]{escape(model)}[/]: {'decoder' if shown.decoder else 'encoder'}, max {shown.max_length} "
                  f"tokens, chat template {escape(shown.template)}, eos appended to plain text: {shown.appends_eos}")
    for item in shown.items:
        note = f", {', '.join(item.cut)}" if item.cut else ""
        console.rule(f"{item.source} {item.tag}: {item.tokens} tokens{note}")
        console.print(escape(item.text) if item.text is not None else "(dropped)")


def register(app: typer.Typer) -> None:
    from rewardlab.data.cli import data_app

    app.command("export")(export)
    data_app.command("show")(show)
