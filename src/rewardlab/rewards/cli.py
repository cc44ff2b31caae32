"""`rewardlab score` — batched scoring of a data file with any reward; `rewardlab calibrate` — a checkpoint's reference
mean/std into its manifest (:mod:`rewardlab.rewards.calibrate`); `rewardlab inspect` — per-attribute scores, gate
weights and DPA rotations of a multi-objective reward."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.data.cli import SPLIT_HELP
from rewardlab.models.device import ATTN_HELP, CHAT_TEMPLATE_HELP, device_option, dtype_option

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
) -> None:
    """Store the reward's mean and std on a reference set as "normalization" in DIR/rewardlab.json (used by
    `serve --normalize`, /v1/score normalize and ensemble specs)."""
    from rewardlab.io import output_lock
    from rewardlab.rewards import calibrate as C
    from rewardlab.rewards.model import ModelReward

    C.check_calibrate_args(prompts, policy, data, samples, max_new_tokens)
    C.writable_manifest(model)
    with output_lock(model, "DIR"):  # one writer of DIR/rewardlab.json (and none while a run writes DIR)
        ref_prompts, responses, source = [], [], {}
        if data is not None:  # cheap and checked row by row: before any model is loaded
            ref_prompts, responses, source["data"] = C.rows_reference(data, split, skip_invalid)
        if policy is not None:
            p, r, source["policy"] = C.policy_reference(policy, prompts, samples, max_new_tokens, temperature, top_p,
                                                        seed, batch_size, max_prompts, device, dtype, split)
            ref_prompts, responses = ref_prompts + p, responses + r
        reward = ModelReward.from_pretrained(model, device=device, dtype=dtype, batch_size=batch_size)
        record = C.normalization_record(C.score_reference(reward, ref_prompts, responses), source, str(model))
        old = C.write_normalization(model, record)
        was = f" (was {C.describe(old)})" if isinstance(old, dict) and "n" in old else ""
        typer.echo(f"{model}: normalization {C.describe(record)}{was} -> {model}/rewardlab.json")


def _items(rows) -> tuple[list, list, list]:
    """Flatten rows into (prompts, responses, ids): pairs → chosen, rejected; k-way → all; rated → the response."""
    from rewardlab.data.records import row_items

    prompts, responses, ids = [], [], []
    for n, row in enumerate(rows):
        for tag, x in row_items(row):
            prompts.append(row.prompt)
            responses.append(x)
            ids.append(f"{row.id if row.id is not None else n}:{tag}")
    return prompts, responses, ids


def inspect(
    reward: str = typer.Argument(..., help="An ArmoRM checkpoint (or armo:/dpa: spec, or a k-output checkpoint)."),
    file: Path = typer.Argument(..., help="Rated rows, pairs or k-way rows."),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL: score, attributes, gate per item."),
    rotate: str | None = typer.Option(None, "--rotate", help="A,B: DPA rankings as v(θ) = cos θ·e_A + sin θ·e_B "
                                      "rotates over θ ∈ [−90°, 90°] (within each prompt's responses)."),
    angles: int = typer.Option(7, "--angles", help="Number of angles for --rotate."),
    show: int = typer.Option(8, "--show", help="Items (and prompts for --rotate) printed."),
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

    from rewardlab.data.load import load_rows
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_file, spec_paths, write_jsonl_atomic
    from rewardlab.rewards.multiobjective import rotation_rankings
    from rewardlab.rewards.registry import load_reward

    if output is not None:
        check_output_file(output, "--output")
        check_not_an_input(output, {"FILE": file, "REWARD": spec_paths(reward)})
    rows = load_rows(file, split=split, skip_invalid=skip_invalid)
    r = load_reward(reward, device=device, dtype=dtype)
    prompts, responses, ids = _items(rows)
    if hasattr(r, "inspect"):
        info = r.inspect(prompts, responses)
    else:
        attrs = r.attributes(prompts, responses) if hasattr(r, "attributes") else r.score(prompts, responses)
        if attrs.dim() != 2:
            raise UserError(f"{reward}: a scalar reward has no attributes to inspect")
        names = getattr(r, "names", None) or (getattr(r, "manifest", {}) or {}).get("attributes")
        info = {"names": names or [f"out{i}" for i in range(attrs.shape[1])], "attributes": attrs,
                "score": r.score(prompts, responses) if hasattr(r, "attributes") else attrs.mean(1)}
    names = info["names"]
    per_item = [{"id": i, "score": float(info["score"][n])} for n, i in enumerate(ids)]
    for key in ("attributes", "decorrelated", "gate"):
        if key in info:
            for n, rec in enumerate(per_item):
                rec[key] = dict(zip(names, [float(x) for x in info[key][n]]))
    console = Console()
    table = Table(title=f"{reward}: scores" + (f" (β = {info['beta']:.3g})" if "beta" in info else ""))
    for col in ["id", "score", *names, *([f"gate:{n}" for n in names] if "gate" in info else [])]:
        table.add_column(col, justify="right")
    for rec in per_item[:show]:
        gate = [f"{rec['gate'][n]:.3f}" for n in names] if "gate" in rec else []
        table.add_row(escape(rec["id"]), f"{rec['score']:.4g}", *[f"{rec['attributes'][n]:.4g}" for n in names], *gate)
    console.print(table)
    if rotate:
        a, _, b = rotate.partition(",")
        if a not in names or b not in names:
            raise UserError(f"--rotate {rotate!r}: both must be among the attributes {names}")
        thetas = [-90 + 180 * i / max(1, angles - 1) for i in range(angles)]
        groups: dict[str, list[int]] = {}
        for n, p in enumerate(prompts):
            groups.setdefault(str(p), []).append(n)
        multi = [g for g in groups.values() if len(g) > 1] or [list(range(len(prompts)))]
        changed = 0
        rot = Table(title=f"DPA rotation over ({a}, {b}): ranking (best first) per θ")
        rot.add_column("prompt")
        for t in thetas:
            rot.add_column(f"{t:.0f}°")
        for gi, g in enumerate(multi):
            ranks = rotation_rankings(info["attributes"][g], names.index(a), names.index(b), thetas)
            changed += len({tuple(x) for x in ranks}) > 1
            if gi < show:
                cells = [" ".join(ids[g[i]].split(":")[-1] for i in x) for x in ranks]
                rot.add_row(escape(str(prompts[g[0]])[:30]), *cells)
        console.print(rot)
        console.print(f"rotation: the ranking changes with θ for {changed} of {len(multi)} prompt groups")
    if output:
        write_jsonl_atomic(output, per_item)
        typer.echo(f"wrote {len(per_item)} items to {output}")


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

    from rewardlab.data.load import load_pairs
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_file, spec_paths, write_json_atomic
    from rewardlab.rewards.judge import JudgeReward
    from rewardlab.rewards.registry import load_reward

    if output is not None:  # before the judge runs: a bad path must not cost its hours
        check_output_file(output, "--output")
        check_not_an_input(output, {"--data": data, "SPEC": spec_paths(spec)})
    pairs = load_pairs(data, split=split, skip_invalid=skip_invalid)[:max_pairs]
    r = load_reward(spec, device=device, dtype=dtype)
    if not isinstance(r, JudgeReward):
        raise UserError(f"{spec!r} is not a judge: spec (judge:MODEL[:pairwise|pointwise])")
    prompts = [p.prompt for p in pairs]
    if r.config.mode == "pairwise":
        v = r.compare(prompts, [p.chosen for p in pairs], [p.rejected for p in pairs])
        out = {"accuracy": float((v.p > 0.5).float().mean()), "mean_p_chosen": float(v.p.mean())}
    else:
        s = r.score(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        out = {"accuracy": float((s[: len(pairs)] > s[len(pairs) :]).float().mean())}
    out = {"judge": spec, "pairs": len(pairs)} | out | r.report()
    typer.echo(json.dumps(out, indent=2))
    if output:
        write_json_atomic(output, out)


def mixture_train(
    data: Path = typer.Option(..., "--data", help="Preference pairs; annotators may disagree (no group labels)."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint directory (spec micro:DIR)."),
    base: str = typer.Option("tiny", help="'tiny' or a local HF model directory / .gguf file."),
    k: int = typer.Option(2, help="Number of BT heads (preference types)."),
    epochs: int = typer.Option(3), batch_size: int = typer.Option(16), lr: float = typer.Option(1e-3),
    max_length: int = typer.Option(256), balance: float = typer.Option(0.1, help="Weight of the balance term."),
    seed: int = typer.Option(0),
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
    from rewardlab.data.load import load_pairs
    from rewardlab.io import check_new_output_dir, check_not_an_input, output_lock, replacing_dir
    from rewardlab.rewards.personalized import MixtureConfig, fit_mixture, save_mixture

    check_new_output_dir(output, overwrite)
    check_not_an_input(output, {"--data": data, "--base": base}, contains=overwrite)
    with output_lock(output):
        pairs = load_pairs(data, split=split, skip_invalid=skip_invalid)
        cfg = MixtureConfig(k=k, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
                            balance=balance, seed=seed)
        model, tokenizer, history = fit_mixture(pairs, base, cfg, device=device, dtype=dtype)
        with replacing_dir(output) as tmp:
            save_mixture(model, tokenizer, tmp, cfg, manifest={"history": history})
    typer.echo(f"loss per epoch {', '.join(f'{h:.4f}' for h in history)}; saved mixture RM to {output} "
               f"(spec micro:{output})")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("calibrate")(calibrate)
    app.command("inspect")(inspect)
    app.command("judge")(judge)
    app.command("mixture-train")(mixture_train)
