"""`rewardlab teachers`: rank reward models as teachers for one policy. Imports only typer at module level."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.models.device import CHAT_TEMPLATE_HELP, device_option, dtype_option, read_chat_template
from rewardlab.models.engines import engine_option


def teachers_command(
    policy: str = typer.Option(..., "--policy", help="HF causal LM directory or hub id, or 'tiny' (a random tiny "
                               "GPT-2)."),
    reward: list[str] = typer.Option(..., "--reward", help="A reward spec (checkpoint, HF/hub RM or PEFT adapter "
                                     "dir, python:, rule:, mix:, ensemble:, dpo:, armo:, dpa:, judge:, micro:, prm:, "
                                     "http://...); repeat for each reward to rank."),
    prompts: Path = typer.Option(..., "--prompts", help="Prompts for the policy (any row file with prompts)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for teachers.json, report.html, "
                                "teachers.png."),
    gold: str | None = typer.Option(None, "--gold", help="Gold reward spec: on-policy accuracy, best-of-n and RL "
                                    "probes."),
    data: Path | None = typer.Option(None, "--data", help="Preference pairs: off-policy accuracy."),
    split: str | None = typer.Option(None, "--split", help="Split of a saved DatasetDict --data."),
    num_samples: int = typer.Option(8, "--num-samples", "-m", help="Responses sampled per prompt (shared by "
                                    "every reward)."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens"),
    max_prompt_length: int | None = typer.Option(None, "--max-prompt-length", help="Prompt tokens kept (the last "
                                                 "ones). Default: the policy's positions − --max-new-tokens."),
    temperature: float = typer.Option(1.0, "--temperature"),
    engine: str = engine_option("Draws the shared sample; the RL probes sample with transformers (each trains its "
                                "own copy of the policy for a few steps)."),
    max_prompts: int | None = typer.Option(None, "--max-prompts", help="Use only the first N prompts."),
    probe_steps: int = typer.Option(10, "--probe-steps", help="RL steps per reward and seed (0: no RL probe; "
                                    "needs --gold)."),
    probe_seeds: int = typer.Option(3, "--probe-seeds", help="RL probe seeds (the same for every reward)."),
    probe_algo: str = typer.Option("rloo", "--probe-algo", help="rloo | grpo."),
    probe_lr: float = typer.Option(3e-3, "--probe-lr"),
    probe_optimizer: str = typer.Option("sgd", "--probe-optimizer", help="sgd (the gradient's size shows, as in "
                                        "Razin et al.) | adamw (what most trainers use)."),
    probe_prompts_per_step: int = typer.Option(8, "--probe-prompts-per-step"),
    probe_eval_prompts: int = typer.Option(16, "--probe-eval-prompts", help="Prompts the probe's gold tracking "
                                           "samples (the first N of --prompts)."),
    probe_eval_samples: int = typer.Option(4, "--probe-eval-samples", help="Samples per evaluation prompt."),
    probe_lora_r: int = typer.Option(0, "--probe-lora-r", help="0: each probe fine-tunes all weights of a copy of "
                                     "the policy; R > 0: a fresh rank-R LoRA adapter on the policy itself, removed "
                                     "after (no copy: for pretrained policies; usually wants a larger --probe-lr)."),
    seed: int = typer.Option(0, "--seed"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
    device: str = device_option(),
    dtype: str = dtype_option("Applies to the rewards; the policy runs in fp32."),
    chat_template: Path | None = typer.Option(None, "--chat-template", help=CHAT_TEMPLATE_HELP + " Applies to the "
                                              "ranked reward models, not to --gold."),
) -> None:
    """Which reward model is the better teacher for this policy? Direction first, then speed, checked by probes."""
    from rewardlab.errors import UserError
    from rewardlab.evaluate.teacher import SamplingConfig
    from rewardlab.teachers.probes import ProbeConfig
    from rewardlab.teachers.report import table_rows
    from rewardlab.teachers.run import TeachersConfig, run_teachers

    if probe_lora_r < 0:
        raise UserError(f"--probe-lora-r must be >= 0 (0: full fine-tuning), got {probe_lora_r}")
    if probe_algo not in ("rloo", "grpo") or probe_optimizer not in ("sgd", "adamw"):
        raise UserError(f"--probe-algo must be rloo or grpo and --probe-optimizer sgd or adamw, got {probe_algo!r} "
                        f"and {probe_optimizer!r}")
    cfg = TeachersConfig(
        sampling=SamplingConfig(num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                                seed=seed, max_prompt_length=max_prompt_length, engine=engine),
        probe=ProbeConfig(steps=probe_steps, seeds=probe_seeds, seed=seed, algo=probe_algo, lr=probe_lr,
                          optimizer=probe_optimizer, prompts_per_step=probe_prompts_per_step,
                          max_new_tokens=max_new_tokens, k=2 if probe_algo == "rloo" else 4,
                          eval_prompts=probe_eval_prompts, eval_samples=probe_eval_samples, lora_r=probe_lora_r))
    doc = run_teachers(policy, reward, prompts, output, gold=gold, data=data, split=split, cfg=cfg,
                       max_prompts=max_prompts, device=device, dtype=dtype, skip_invalid=skip_invalid,
                       chat_template=read_chat_template(chat_template), log=lambda s: typer.echo(s, err=True))
    _print_table(table_rows(doc))
    typer.echo(f"verdict: {doc['verdict']['verdict']}")
    for r in doc["verdict"]["ranking"]:
        for flag in r["flags"]:
            typer.echo(f"  {r['reward']}: {flag}")
    typer.echo(f"wrote {doc['files']['teachers.json']} and {doc['files']['report.html']}")


def _print_table(rows: list[dict[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    for c in cols:
        table.add_column(c, no_wrap=True)
    for r in rows:
        table.add_row(*(r.get(c, "–") for c in cols))
    width = sum(max(len(c), *(len(r.get(c, "–")) for r in rows)) + 3 for c in cols) + 1  # every spec in full
    Console(width=max(width, 80)).print(table)


def register(app: typer.Typer) -> None:
    app.command("teachers")(teachers_command)
