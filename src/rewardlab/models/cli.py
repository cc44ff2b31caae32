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

    from rewardlab.data.load import load_rows
    from rewardlab.data.records import row_items
    from rewardlab.data.tokenize import ChatTemplateError, PairEncoder
    from rewardlab.models.checkpoint import model_rendering

    template = chat_template.read_text() if chat_template else None
    tokenizer, rendering, budget = model_rendering(model, chat_template=template)
    enc = PairEncoder(tokenizer, max_length=max_length or budget, rendering=rendering)
    console = Console(highlight=False)
    source = f"from {chat_template}" if template else "of the tokenizer" if tokenizer.chat_template else "default"
    console.print(f"[bold]{escape(model)}[/]: {'decoder' if rendering.decoder else 'encoder'}, max {enc.max_length} "
                  f"tokens, chat template {escape(source)}, eos appended to plain text: "
                  f"{rendering.append_eos is not None}")
    for row in load_rows(file, split=split)[:n]:
        for tag, response in row_items(row):
            before = enc.stats.as_dict()
            try:
                ids = enc.encode(row.prompt, response)
            except ChatTemplateError as e:
                raise ChatTemplateError(e.reason, f"{row.source}: field '{tag}': ") from None
            cut = [k for k, v in enc.stats.as_dict().items() if k != "items" and v > before[k]]
            note = f", {', '.join(cut)}" if cut else ""
            console.rule(f"{row.source} {tag}: {len(ids) if ids is not None else 0} tokens{note}")
            console.print(escape(tokenizer.decode(ids, skip_special_tokens=False)) if ids is not None else "(dropped)")


def register(app: typer.Typer) -> None:
    from rewardlab.data.cli import data_app

    app.command("export")(export)
    data_app.command("show")(show)
