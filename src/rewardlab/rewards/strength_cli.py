"""`rewardlab data denoise` — preference strength from an ensemble of reward models, and flipped, dropped or
smoothed likely-mislabelled pairs (Secrets of RLHF II: :mod:`rewardlab.rewards.strength`). A `data` command that
lives with the rewards stage because it scores with reward specs."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.data.cli import SPLIT_HELP
from rewardlab.models.device import CHAT_TEMPLATE_HELP, device_option, dtype_option


def denoise(
    file: Path = typer.Argument(..., help="Preference pairs (prompt/chosen/rejected)."),
    reward: list[str] = typer.Option(..., "--reward", "-r", help="A reward spec (repeat: the ensemble, e.g. RMs "
                                     "trained on FILE with different seeds; the paper uses 10 of one recipe, whose "
                                     "scores share a scale)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL of the pairs as --action leaves them, "
                                       "each with strength_mean, strength_std, strength_flagged (required unless "
                                       "--action report)."),
    action: str = typer.Option("report", help="report: write nothing new; flip: swap chosen and rejected of "
                               "flagged pairs; drop: remove them; smooth: label smoothing on them (written as two "
                               "weighted rows)."),
    threshold: float | None = typer.Option(None, help="Flag pairs whose mean strength μ̂ is below this (0: the "
                                           "ensemble votes against the label).", show_default="0"),
    fraction: float | None = typer.Option(None, help="Flag the pairs of lowest μ̂ instead, this share of them "
                                          "(the paper flips its lowest 0.2)."),
    smoothing: float = typer.Option(0.1, help="--action smooth: the label-smoothing ε of flagged pairs."),
    margin: bool = typer.Option(False, "--margin/--no-margin", help="Write margin = --margin-scale·μ̂ (as "
                                "written) on every row: train's BT loss −log σ(r_c − r_r − margin) then uses the "
                                "paper's adaptive margin."),
    margin_scale: float = typer.Option(1.0, help="With --margin: the factor on μ̂."),
    batch_size: int = typer.Option(32, help="Items per forward pass."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    chat_template: Path | None = typer.Option(None, "--chat-template", help=CHAT_TEMPLATE_HELP),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named; "
                                      "they are not written) instead of failing."),
) -> None:
    """Preference strength of every pair: the mean μ̂ and spread σ̂ of r(chosen) − r(rejected) over the --reward
    ensemble (Secrets of RLHF II, Eq. 4); its distribution, and the pairs with the flagged ones flipped, dropped or
    smoothed, optionally with adaptive margins."""
    from contextlib import nullcontext

    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_file, output_lock, spec_paths
    from rewardlab.models.device import read_chat_template
    from rewardlab.rewards.strength import ACTIONS, denoise_file

    problems = [f"--action must be one of {', '.join(ACTIONS)}, got {action!r}"] * (action not in ACTIONS)
    problems += [f"--action {action} needs --output"] * (action != "report" and output is None)
    problems += ["give --threshold or --fraction, not both"] * (threshold is not None and fraction is not None)
    problems += [f"--fraction must be in [0, 1], got {fraction}"] * (fraction is not None and not 0 <= fraction <= 1)
    problems += [f"--smoothing must be in [0, 0.5], got {smoothing}"] * (not 0 <= smoothing <= 0.5)
    problems += [f"--batch-size must be >= 1, got {batch_size}"] * (batch_size < 1)
    if problems:
        raise UserError(*problems)
    if output is not None:
        check_output_file(output, "--output")
        check_not_an_input(output, {"FILE": file, "--reward": [p for r in reward for p in spec_paths(r)],
                                    "--chat-template": chat_template})
    with output_lock(output) if output is not None else nullcontext():
        lines = denoise_file(file, reward, output, action=action, threshold=0.0 if threshold is None else threshold,
                             fraction=fraction, smoothing=smoothing, margin_scale=margin_scale if margin else None,
                             batch_size=batch_size, device=device, dtype=dtype,
                             chat_template=read_chat_template(chat_template), split=split, skip_invalid=skip_invalid,
                             log=lambda line: typer.echo(line, err=True))
    for line in lines:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    from rewardlab.data.cli import data_app

    data_app.command("denoise")(denoise)
