"""`rewardlab mixture-train`: a MiCRo-style mixture reward model (:mod:`rewardlab.train.mixture_run`). Imports only
typer at module level."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.data.cli import SPLIT_HELP
from rewardlab.models.device import device_option, dtype_option


def mixture_train(
    data: Path = typer.Option(..., "--data", help="Preference pairs; annotators may disagree (no group labels)."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint directory (spec micro:DIR)."),
    base: str = typer.Option("tiny", help="'tiny' or a local HF model directory / .gguf file."),
    k: int = typer.Option(2, help="Number of BT heads (preference types)."),
    epochs: int = typer.Option(3), batch_size: int = typer.Option(16), lr: float = typer.Option(1e-3),
    max_length: int = typer.Option(256), balance: float = typer.Option(0.1, help="Weight of the balance term."),
    seed: int = typer.Option(0),
    em: bool = typer.Option(False, "--em", help="MaxMin-RLHF's mixture (Chakraborty et al. 2024) instead of MiCRo's: "
                            "hard EM that assigns each annotator (--user-field; else each pair) to the head that "
                            "explains its pairs best, then refits each head on its annotators' pairs; writes "
                            "OUTPUT/groups.json. Implied by --user-field / --group-field."),
    user_field: str | None = typer.Option(None, "--user-field", help="Row field naming the annotator (EM unit)."),
    group_field: str | None = typer.Option(None, "--group-field", help="Row field naming a known group: one head per "
                                           "group (K = the number of groups), no EM."),
    rounds: int = typer.Option(5, "--rounds", help="EM rounds at most (each: --epochs passes, then an E-step)."),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    overwrite: bool = typer.Option(False, help="Replace an existing, non-empty OUTPUT (once the new model is "
                                   "trained)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
    device: str = device_option(),
    dtype: str = dtype_option("Training keeps fp32 master weights (autocast)."),
) -> None:
    """Train a MiCRo-style mixture of K Bradley–Terry heads with a context router (rewards/personalized.py).
    OUTPUT is checked before any work; the new checkpoint replaces it whole (no mix of old and new files)."""
    from rewardlab.io import check_new_output_dir, check_not_an_input, output_lock
    from rewardlab.train.mixture_run import train_mixture_dir, train_mixture_em_dir

    check_new_output_dir(output, overwrite)
    check_not_an_input(output, {"--data": data, "--base": base}, contains=overwrite)
    if em or user_field or group_field:
        with output_lock(output):
            report = train_mixture_em_dir(data, output, user_field=user_field, group_field=group_field, base=base,
                                          k=k, rounds=rounds, epochs=epochs, batch_size=batch_size, lr=lr,
                                          max_length=max_length, seed=seed, split=split, skip_invalid=skip_invalid,
                                          device=device, dtype=dtype)
        for row in report["rounds"]:
            typer.echo(f"round {row['round']}: log-likelihood {row['loglik']:.2f}, {row['changed']} units moved, "
                       f"units per group {row['sizes']}, pairs per group {row['pairs']}")
        state = "converged" if report["converged"] else f"not converged after {len(report['rounds'])} rounds"
        typer.echo(f"{report['method']} ({state}); groups {', '.join(report['groups'])}; saved mixture RM to {output} "
                   f"(worst group: maxmin:micro:{output}; assignment in {output}/groups.json)")
        return
    with output_lock(output):
        history = train_mixture_dir(data, output, base=base, k=k, epochs=epochs, batch_size=batch_size, lr=lr,
                                    max_length=max_length, balance=balance, seed=seed, split=split,
                                    skip_invalid=skip_invalid, device=device, dtype=dtype)
    typer.echo(f"loss per epoch {', '.join(f'{h:.4f}' for h in history)}; saved mixture RM to {output} "
               f"(spec micro:{output})")


def register(app: typer.Typer) -> None:
    app.command("mixture-train")(mixture_train)
