"""`rewardlab score` — batched scoring of a data file with any reward; `rewardlab calibrate` — a checkpoint's reference
mean/std into its manifest (:mod:`rewardlab.rewards.calibrate`); `rewardlab inspect` — per-attribute scores, gate
weights and DPA rotations of a multi-objective reward."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.data.cli import SPLIT_HELP
from rewardlab.models.device import ATTN_HELP, CHAT_TEMPLATE_HELP, device_option, dtype_option
from rewardlab.models.engines import engine_option

REFERENCE_HELP = ("Ensemble specs: standardize every member on this data file's responses (default: each member's "
                  "manifest normalization, from `rewardlab calibrate`).")


def score(
    reward: str = typer.Argument(..., help="A reward spec: checkpoint dir, python:MODULE:FN, ..."),
    file: Path = typer.Argument(..., help="Pairs (chosen/rejected), k-way rows, rated rows or {prompt, response}."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL with scores, in input order (renamed into place "
                                "when complete)."),
    batch_size: int = typer.Option(32, help="Items per forward pass (length-sorted)."),
    chunk_rows: int = typer.Option(1024, help="Rows scored and written to OUTPUT.partial at a time."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue OUTPUT.partial when it was written for "
                                "the same input, reward and settings (default), or start over."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    chat_template: Path | None = typer.Option(None, "--chat-template", help=CHAT_TEMPLATE_HELP),
    attn_implementation: str | None = typer.Option(None, "--attn-implementation", help=ATTN_HELP),
    reference: Path | None = typer.Option(None, "--reference", help=REFERENCE_HELP),
    engine: str = typer.Option("local", help="local: this process; ray: Ray Data actors ($RAY_ADDRESS or a local "
                               "cluster), OUT as JSONL or .parquet, no resume."),
    num_replicas: int = typer.Option(1, help="--engine ray: actors, each holding the reward once."),
    num_gpus_per_replica: float = typer.Option(0.0, help="--engine ray: GPUs per actor (fractions share one)."),
    split: str | None = typer.Option(None, help="Split of a saved DatasetDict directory (default: train, or its "
                                     "only split)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
) -> None:
    """Score every row: pairs get chosen_score/rejected_score, k-way rows chosen_scores/rejected_scores, single
    responses a score. Resumable: a killed run continues from its last complete chunk (--restart starts over)."""
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_file, output_lock, spec_paths
    from rewardlab.rewards.scoring import score_file

    check_output_file(output, "--output")
    check_not_an_input(output, {"FILE": file, "REWARD": spec_paths(reward), "--reference": reference,
                                "--chat-template": chat_template})
    problems = [f"--{name.replace('_', '-')} must be >= 1, got {value}"
                for name, value in (("batch_size", batch_size), ("chunk_rows", chunk_rows),
                                    ("num_replicas", num_replicas)) if value < 1]
    problems += [f"--engine must be local or ray, got {engine!r}"] * (engine not in ("local", "ray"))
    problems += [f"--num-gpus-per-replica must be >= 0, got {num_gpus_per_replica}"] * (num_gpus_per_replica < 0)
    problems += ["--split needs --engine local"] * (split is not None and engine == "ray")
    if problems:
        raise UserError(*problems)
    with output_lock(output):  # one writer: a second run into OUTPUT would interleave its chunks
        n = score_file(reward, file, output, batch_size=batch_size, chunk_rows=chunk_rows, resume=resume,
                       device=device, dtype=dtype, chat_template=chat_template,
                       attn_implementation=attn_implementation, reference=reference, engine=engine,
                       num_replicas=num_replicas, num_gpus_per_replica=num_gpus_per_replica, split=split,
                       skip_invalid=skip_invalid, log=lambda line: typer.echo(line, err=True), echo=typer.echo)
    typer.echo(f"scored {n} rows -> {output}" + (f" (Ray Data, {num_replicas} replicas)" if engine == "ray" else ""))


def calibrate(
    model: Path = typer.Argument(..., metavar="DIR", help="A reward-model checkpoint (rewardlab train output)."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompts to sample --policy on (JSONL)."),
    policy: str | None = typer.Option(None, "--policy", help="Causal LM directory whose samples are the reference "
                                      "set (e.g. the policy RL will start from)."),
    data: Path | None = typer.Option(None, "--data", help="Data file whose responses (chosen and rejected) are the "
                                     "reference set; with --policy both sets are pooled."),
    samples: int = typer.Option(4, "--num-samples", "-m", "-n", "--samples", help="Samples per prompt."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    max_prompts: int | None = typer.Option(None, "--max-prompts", help="Use only the first N prompts."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_p: float = typer.Option(1.0, "--top-p"),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(32, help="Sequences per generation / scoring batch."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
    engine: str = engine_option("Samples --policy (recorded in the normalization's source)."),
) -> None:
    """Store the reward's mean and std on a reference set as "normalization" in DIR/rewardlab.json (used by
    `serve --normalize`, /v1/score normalize and ensemble specs)."""
    from rewardlab.io import output_lock
    from rewardlab.rewards import calibrate as C

    C.check_calibrate_args(prompts, policy, data, samples, max_new_tokens, engine)
    C.writable_manifest(model)
    with output_lock(model, "DIR"):  # one writer of DIR/rewardlab.json (and none while a run writes DIR)
        record, old = C.calibrate_checkpoint(model, data=data, policy=policy, prompts=prompts, samples=samples,
                                             max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                             seed=seed, batch_size=batch_size, max_prompts=max_prompts,
                                             device=device, dtype=dtype, split=split, skip_invalid=skip_invalid,
                                             engine=engine)
    was = f" (was {C.describe(old)})" if isinstance(old, dict) and "n" in old else ""
    typer.echo(f"{model}: normalization {C.describe(record)}{was} -> {model}/rewardlab.json")


def inspect(
    reward: str = typer.Argument(..., help="An ArmoRM checkpoint (or armo:/dpa: spec, or a k-output checkpoint)."),
    file: Path = typer.Argument(..., help="Rated rows, pairs or k-way rows."),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL: score, attributes, gate per item."),
    rotate: str | None = typer.Option(None, "--rotate", help="A,B: DPA rankings as v(θ) = cos θ·e_A + sin θ·e_B "
                                      "rotates over θ ∈ [−90°, 90°] (within each prompt's responses)."),
    angles: int = typer.Option(7, "--angles", help="Number of angles for --rotate."),
    show: int = typer.Option(8, "--show", help="Items printed; for --rotate, prompt groups printed and the best "
                             "items of each ranking."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    split: str | None = typer.Option(None, help=SPLIT_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
) -> None:
    """Per-attribute scores, decorrelated scores and gate weights (ArmoRM), and how DPA rankings rotate."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from rewardlab.io import check_not_an_input, check_output_file, spec_paths
    from rewardlab.rewards.inspection import inspect_reward

    if output is not None:
        check_output_file(output, "--output")
        check_not_an_input(output, {"FILE": file, "REWARD": spec_paths(reward)})
    result = inspect_reward(reward, file, rotate=rotate, angles=angles, device=device, dtype=dtype, split=split,
                            skip_invalid=skip_invalid, output=output)
    names = result.names
    console = Console()
    table = Table(title=f"{reward}: scores" + (f" (β = {result.beta:.3g})" if result.beta is not None else ""))
    for col in ["id", "score", *names, *([f"gate:{n}" for n in names] if result.gate else [])]:
        table.add_column(col, justify="right")
    for rec in result.items[:show]:
        gate = [f"{rec['gate'][n]:.3f}" for n in names] if "gate" in rec else []
        table.add_row(escape(rec["id"]), f"{rec['score']:.4g}", *[f"{rec['attributes'][n]:.4g}" for n in names], *gate)
    console.print(table)
    if rot := result.rotation:
        rotated = Table(title=f"DPA rotation over ({rot.a}, {rot.b}): the {show} best items (ROW:TAG, best first) "
                        f"per θ; ROW = the row's id, else L<line of {file}>")
        rotated.add_column("prompt")
        for t in rot.thetas:
            rotated.add_column(f"{t:.0f}°")
        for prompt, ranks in rot.groups[:show]:
            rotated.add_row(escape(prompt[:30]), *[escape(" ".join(r[:show]) + (f" … +{len(r) - show}"
                                                                                 if len(r) > show else ""))
                                                   for r in ranks])
        console.print(rotated)
        if rot.pooled:
            console.print("rotation: no prompt has two responses, so all items are ranked together")
        console.print(f"rotation: the ranking changes with θ for {rot.changed} of {len(rot.groups)} prompt groups"
                      + (f" ({show} shown)" if len(rot.groups) > show else ""))
    if output:
        typer.echo(f"wrote {len(result.items)} items to {output}")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("calibrate")(calibrate)
    app.command("inspect")(inspect)
