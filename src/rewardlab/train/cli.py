"""`rewardlab train` — Bradley–Terry reward-model training."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    data: Path = typer.Option(..., "--data", help="Training preference pairs (JSONL / Parquet / datasets dir)."),
    eval_data: Path | None = typer.Option(None, "--eval", help="Held-out pairs for per-epoch accuracy."),
    base: str | None = typer.Option(None, help="'tiny', a local HF model dir (causal LM or encoder), a .gguf file, "
                                    "or a rewardlab checkpoint. [default: tiny]"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (model + checkpoints + metrics)."),
    config: Path | None = typer.Option(None, help="YAML file with any TrainConfig options; flags override it."),
    epochs: int | None = typer.Option(None), batch_size: int | None = typer.Option(None),
    grad_accum: int | None = typer.Option(None), lr: float | None = typer.Option(None),
    max_length: int | None = typer.Option(None), max_steps: int | None = typer.Option(None),
    overlong: str | None = typer.Option(None, help="'truncate' (default) or 'drop' responses longer than the budget."),
    centering: float | None = typer.Option(None, help="Reward-centering coefficient η (e.g. 0.01)."),
    label_smoothing: float | None = typer.Option(None, help="Label smoothing ε for noisy preferences."),
    use_margin: bool | None = typer.Option(None, "--margin/--no-margin", help="Use rows' 'margin' in the loss."),
    pooling: str | None = typer.Option(None, help="last | cls | mean (default by backbone type)."),
    num_outputs: int | None = typer.Option(None, help="k > 1: k BT heads sharing the backbone (cheap ensemble)."),
    lora_r: int | None = typer.Option(None, help="LoRA rank (0 = full fine-tuning)."),
    seed: int | None = typer.Option(None), save_every: int | None = typer.Option(None),
    mixed_precision: str | None = typer.Option(None, help="auto | no | bf16 | fp16"),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in the output directory."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows (counted, listed in OUTPUT/skipped.txt)."),
) -> None:
    """Train a Bradley–Terry reward model. Every row is validated before training starts."""
    from rewardlab.data.load import load_pairs
    from rewardlab.errors import UserError
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    flags = dict(base=base, output=str(output) if output else None, epochs=epochs, batch_size=batch_size,
                 grad_accum=grad_accum, lr=lr, max_length=max_length, max_steps=max_steps, overlong=overlong,
                 centering=centering, label_smoothing=label_smoothing, use_margin=use_margin, pooling=pooling,
                 num_outputs=num_outputs, lora_r=lora_r, seed=seed, save_every=save_every,
                 mixed_precision=mixed_precision)
    if config:
        cfg = TrainConfig.from_yaml(config, **flags)
    else:
        cfg = TrainConfig.from_dict({k: v for k, v in flags.items() if v is not None}, origin="flags")
    if output is None and config is None:
        raise UserError("--output is required (or set 'output' in --config)")
    out = Path(cfg.output)
    pairs = load_pairs(data, skip_invalid=skip_invalid, skipped_report=out / "skipped.txt")
    eval_pairs = load_pairs(eval_data) if eval_data else None
    summary = train_reward_model(pairs, cfg, eval_pairs, resume=resume)
    if "metrics" not in summary:  # a non-main process of a distributed run: the main one reports
        return
    m = summary["metrics"]
    if "eval_accuracy" in m:
        typer.echo(f"eval accuracy {m['eval_accuracy']:.4f}")
    typer.echo(f"saved reward model to {cfg.output}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
