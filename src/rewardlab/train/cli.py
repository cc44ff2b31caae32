"""`rewardlab train` — Bradley–Terry reward-model training (``--objective bt``), DPO policies (``--objective dpo``)
and multi-objective ArmoRM heads (``--objective armo``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rewardlab.train import flag_defaults
from rewardlab.train.flag_defaults import DTYPE_HELP, shown

if TYPE_CHECKING:
    from rewardlab.train.launch import TrainResult


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def train(
    data: Path | None = typer.Option(None, "--data", help="Training preference pairs (JSONL / Parquet / datasets "
                                     "dir); required, here or as 'data' in --config."),
    objective: str | None = typer.Option(None, "--objective", help="bt: Bradley–Terry reward model; dpo: a DPO "
                                         "policy (its implicit reward is a Reward: dpo:OUTPUT); armo: ArmoRM "
                                         "attribute heads + gating on a frozen backbone (needs --rated); prm: a "
                                         "process reward model on stepwise rows (TRL stepwise or ProcessBench).",
                                         show_default=shown("objective")),
    beta: float | None = typer.Option(None, "--beta", help="DPO β.", show_default=shown("beta")),
    reference: str | None = typer.Option(None, "--reference", help="DPO reference policy dir (default: the base)."),
    rated: Path | None = typer.Option(None, "--rated", help="ArmoRM: rated rows (prompt, response, attributes)."),
    verbosity: str | None = typer.Option(None, "--verbosity", help="ArmoRM: attribute to decorrelate the others "
                                         "from (e.g. verbosity)."),
    ridge: float | None = typer.Option(None, "--ridge", help="ArmoRM: ridge penalty λ of the regression heads.",
                                       show_default=shown("ridge")),
    eval_data: Path | None = typer.Option(None, "--eval", help="Held-out pairs for per-epoch accuracy."),
    base: str | None = typer.Option(None, help="'tiny', a local HF model dir (causal LM or encoder), a .gguf file, "
                                    "or a rewardlab checkpoint.", show_default=shown("base")),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (model + checkpoints + metrics)."),
    config: Path | None = typer.Option(None, help="YAML file with any option of this command (every key: "
                                       "--print-config); flags override it."),
    print_config: bool = typer.Option(False, "--print-config", help="Print every option of --objective with its "
                                      "description and default (or its value from --config and flags) as YAML "
                                      "for --config, and exit."),
    epochs: int | None = typer.Option(None, show_default=shown("epochs")),
    batch_size: int | None = typer.Option(None, show_default=shown("batch_size")),
    grad_accum: int | None = typer.Option(None, show_default=shown("grad_accum")),
    lr: float | None = typer.Option(None, show_default=shown("lr")),
    max_length: int | None = typer.Option(None, show_default=shown("max_length")),
    max_steps: int | None = typer.Option(None, help="> 0: exactly this many optimizer steps, overriding --epochs.",
                                         show_default=shown("max_steps")),
    overlong: str | None = typer.Option(None, help="'truncate' or 'drop' responses longer than the budget.",
                                        show_default=shown("overlong")),
    centering: float | None = typer.Option(None, help="Reward-centering coefficient η (e.g. 0.01).",
                                           show_default=shown("centering")),
    label_smoothing: float | None = typer.Option(None, help="Label smoothing ε for noisy preferences.",
                                                 show_default=shown("label_smoothing")),
    use_margin: bool | None = typer.Option(None, "--margin/--no-margin", help="Use rows' 'margin' in the loss.",
                                           show_default=shown("use_margin", "margin", "no-margin")),
    pooling: str | None = typer.Option(None, help="last | cls | mean (default by backbone type)."),
    num_outputs: int | None = typer.Option(None, help="k > 1: k BT heads sharing the backbone (cheap ensemble).",
                                           show_default=shown("num_outputs")),
    lora_r: int | None = typer.Option(None, help="LoRA rank (0 = full fine-tuning).", show_default=shown("lora_r")),
    seed: int | None = typer.Option(None, show_default=shown("seed")),
    save_every: int | None = typer.Option(None, help="Optimizer steps between checkpoints (0: at the end of each "
                                          "epoch only).", show_default=shown("save_every")),
    report_to: str | None = typer.Option(None, "--report-to", help="Also log the metrics.jsonl numbers to "
                                         "tensorboard (OUTPUT/runs/) and/or wandb: tensorboard | wandb | none, or a "
                                         "comma list (TRL's report_to).", show_default="none"),
    dropout: bool | None = typer.Option(None, "--dropout/--no-dropout", help="Keep the backbone's dropout "
                                        "(TRL disables it).",
                                        show_default=shown("disable_dropout", "no-dropout", "dropout")),
    mixed_precision: str | None = typer.Option(None, help="auto | no | bf16 | fp16 (see --dtype).",
                                               show_default=shown("mixed_precision")),
    dtype: str | None = typer.Option(None, "--dtype", help=DTYPE_HELP, show_default=shown("mixed_precision")),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                       help="Recompute activations in backward: less memory, "
                                                       "~1/3 more compute.",
                                                       show_default=shown("gradient_checkpointing",
                                                                          "gradient-checkpointing",
                                                                          "no-gradient-checkpointing")),
    drop_ties: bool | None = typer.Option(None, "--drop-ties/--keep-ties", help="Drop pairs whose chosen and "
                                          "rejected are identical after truncation (counted).",
                                          show_default=shown("drop_ties", "drop-ties", "keep-ties")),
    device: str | None = typer.Option(None, help="auto (CUDA when present, else MPS, else CPU), cpu or cuda: "
                                      "accelerate places the run (pick GPUs with CUDA_VISIBLE_DEVICES; several "
                                      "with accelerate launch).", show_default=shown("device")),
    chat_template: Path | None = typer.Option(None, "--chat-template", help="Jinja chat template file used instead "
                                              "of the tokenizer's (recorded in rewardlab.json)."),
    attn_implementation: str | None = typer.Option(None, "--attn-implementation", help="transformers attention: "
                                                   "eager, sdpa, flash_attention_2, ..."),
    packing: str | None = typer.Option(None, help="auto: a decoder encodes each pair's prompt once (prompt, "
                                       "chosen, rejected in one row with a block mask; exact) where its attention "
                                       "allows, else separately (said once) | off.", show_default=shown("packing")),
    split: str | None = typer.Option(None, help="Split of a saved DatasetDict (--data and --eval)."),
    eval_split: str | None = typer.Option(None, help="Split of --eval's DatasetDict (default: --split), e.g. test "
                                          "when --data and --eval are the same directory."),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in the output directory."),
    overwrite: bool = typer.Option(False, help="Delete a previous run in the output directory and start afresh."),
    skip_invalid: bool | None = typer.Option(None, "--skip-invalid/--no-skip-invalid", help="Skip invalid rows "
                                             "(counted, listed in OUTPUT/skipped.txt).",
                                             show_default=shown("skip_invalid", "skip-invalid", "no-skip-invalid")),
    step_separator: str | None = typer.Option(None, help="PRM: text after each step, where it is scored (as TRL; "
                                              "escapes \\n, \\t decoded).", show_default=shown("step_separator")),
    last_step_only: bool | None = typer.Option(None, "--last-step-only/--all-steps",
                                                help="PRM: train on each solution's last step only (TRL option).",
                                                show_default=shown("last_step_only", "last-step-only", "all-steps")),
) -> None:
    """Train a reward model (BT), a DPO policy or an ArmoRM. Every option (from --config and flags) and every row
    is validated before training starts; the output directory is checked before any work (a previous run there
    needs --resume or --overwrite; it must not be an input) and locked: a second run into it exits 2 instead of
    interleaving its metrics with ours."""
    from rewardlab.errors import UserError
    from rewardlab.train.launch import run_training
    from rewardlab.train.options import load_options, render_config

    flags = dict(objective=objective, data=_str(data), eval=_str(eval_data), split=split, eval_split=eval_split,
                 skip_invalid=skip_invalid, rated=_str(rated), verbosity=verbosity, ridge=ridge, beta=beta,
                 reference=reference, step_separator=step_separator, last_step_only=last_step_only, base=base,
                 output=_str(output), epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
                 max_length=max_length, max_steps=max_steps, overlong=overlong, centering=centering,
                 label_smoothing=label_smoothing, use_margin=use_margin, pooling=pooling, num_outputs=num_outputs,
                 lora_r=lora_r, seed=seed, save_every=save_every, report_to=report_to,
                 mixed_precision=flag_defaults.mixed_precision(mixed_precision, dtype),
                 disable_dropout=None if dropout is None else not dropout,
                 gradient_checkpointing=gradient_checkpointing, drop_ties=drop_ties, device=device,
                 chat_template=_str(chat_template), attn_implementation=attn_implementation, packing=packing)
    try:
        opts = load_options(config, flags)  # every key checked: nothing exists yet
    except UserError as e:  # --dtype sets mixed_precision: name the flag that was typed
        if dtype is None or mixed_precision is not None:
            raise
        raise UserError(*[line.replace("--mixed-precision:", "--dtype:") for line in e.problems]) from None
    if print_config:
        typer.echo(render_config(opts.objective, opts.values(), flags=flags), nl=False)
        return
    result = run_training(opts, config=config, resume=resume, overwrite=overwrite,
                          log=lambda line: typer.echo(line, err=True))
    _print_result(result)


def _print_result(result: TrainResult) -> None:
    """What was trained and where (a PRM run prints its own; a non-main process of a distributed run nothing)."""
    m = result.summary.get("metrics")
    if result.objective == "prm" or m is None:
        return
    if result.objective == "armo":
        typer.echo(f"attributes {', '.join(result.summary['attributes'])}; gate train accuracy "
                   f"{m['train_accuracy']:.4f}")
        if "eval_accuracy" in m:
            typer.echo(f"eval accuracy {m['eval_accuracy']:.4f}")
        typer.echo(f"saved ArmoRM to {result.output}")
    elif result.objective == "dpo":
        if "eval_accuracy" in m:
            typer.echo(f"eval implicit-reward accuracy {m['eval_accuracy']:.4f}")
        typer.echo(f"saved DPO policy to {result.output} (reward spec: dpo:{result.output})")
    else:
        if "eval_accuracy" in m:
            typer.echo(f"eval accuracy {m['eval_accuracy']:.4f}")
        typer.echo(f"saved reward model to {result.output}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
