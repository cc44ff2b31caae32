"""`rewardlab eval`: the teacher report (:func:`rewardlab.evaluate.run.run_eval`). Imports only typer at module
level; heavy imports happen inside.

Order of work: ``--output`` is checked first (creating nothing; it must not be one of the inputs) and locked against a
second writer (:func:`rewardlab.io.output_lock`), then the report is made (the order of its work: its module).
"""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.models.device import ATTN_HELP, CHAT_TEMPLATE_HELP, device_option, dtype_option
from rewardlab.models.engines import engine_option


def eval_command(
    reward: str = typer.Argument(..., help="Reward spec: a checkpoint directory, python:MODULE:FN, ..."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for metrics.json, report.html, PNGs."),
    data: Path | None = typer.Option(None, "--data", help="Preference pairs, k-way (RB2) rows, or rated rows "
                                     "(response + attributes: per-attribute MSE, Pearson, Spearman)."),
    rated: Path | None = typer.Option(None, "--rated", help="Rated rows beside --data pairs: per-attribute metrics "
                                      "of a multi-objective reward, its preference score's accuracy on the pairs."),
    split: str | None = typer.Option(None, "--split", help="Split of a saved DatasetDict --data (default: train, "
                                     "or its only split)."),
    policy: Path | None = typer.Option(None, "--policy", help="HF causal LM directory, for teacher metrics."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompts for the policy (default: --data's)."),
    gold: str | None = typer.Option(None, "--gold", help="Gold/reference reward spec: on-policy accuracy."),
    num_samples: int = typer.Option(10, "--num-samples", "-m", help="Responses sampled per prompt."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    max_prompt_length: int | None = typer.Option(None, "--max-prompt-length", help="Prompt tokens kept (the last "
                                                 "ones; a leading bos stays). Default: the policy's positions − "
                                                 "--max-new-tokens (no cap without a position limit)."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_p: float = typer.Option(1.0, "--top-p"),
    engine: str = engine_option("Samples --policy."),
    max_prompts: int | None = typer.Option(None, "--max-prompts", help="Use only the first N prompts."),
    compare: list[str] = typer.Option([], "--compare", help="Another reward spec, or an earlier eval output "
                                      "directory (with metrics.json); repeatable."),
    sections: Path | None = typer.Option(None, "--sections", help="YAML section map (default: RB1)."),
    val_fraction: float = typer.Option(0.5, "--val-fraction", help="Pairs used to fit the temperature."),
    seed: int = typer.Option(0, "--seed"),
    device: str = device_option(),
    dtype: str = dtype_option(),
    chat_template: Path | None = typer.Option(None, "--chat-template", help=CHAT_TEMPLATE_HELP + " Applies to the "
                                              "evaluated reward models (MODEL and --compare), not to --gold."),
    attn_implementation: str | None = typer.Option(None, "--attn-implementation", help=ATTN_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
) -> None:
    """Evaluate a reward model as a teacher: accuracy, RB-style scores, calibration, length bias, reward variance;
    on rated rows, per-attribute MSE, Pearson and Spearman."""
    from rewardlab.evaluate.run import run_eval
    from rewardlab.io import check_not_an_input, check_output_dir, output_lock, spec_paths

    check_output_dir(output)
    check_not_an_input(output, {"REWARD": spec_paths(reward), "--data": data, "--rated": rated, "--policy": policy,
                                "--prompts": prompts, "--gold": spec_paths(gold),
                                "--compare": [p for c in compare for p in spec_paths(c)], "--sections": sections,
                                "--chat-template": chat_template})
    with output_lock(output):  # one writer: a second eval into OUTPUT would mix its files with ours
        results, paths = run_eval(reward, output, data=data, split=split, policy=policy, prompts=prompts, gold=gold,
                                  num_samples=num_samples, max_new_tokens=max_new_tokens,
                                  max_prompt_length=max_prompt_length, temperature=temperature, top_p=top_p,
                                  max_prompts=max_prompts, compare=compare, sections=sections,
                                  val_fraction=val_fraction, seed=seed, device=device, dtype=dtype,
                                  chat_template=chat_template, attn_implementation=attn_implementation,
                                  skip_invalid=skip_invalid, rated=rated, engine=engine,
                                  log=lambda line: typer.echo(line, err=True))
    for res in results:  # every compared model, not only the first
        s = res.metrics["summary"]
        ci = {k: s.get(f"{k}_ci") for k in s}
        shown = ", ".join(f"{k}={v:.3f}" + (f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if ci[k] and None not in ci[k]
                                            else "") for k, v in s.items() if isinstance(v, float))
        typer.echo(f"{res.name}: {shown}")
        for attr, v in (res.metrics.get("attributes") or {}).get("attributes", {}).items():
            typer.echo(f"  {attr}: n={v['n']} " + " ".join(f"{k}={_num(v[k])}" for k in ("mse", "pearson",
                                                                                             "spearman")))
    if policy is not None and len(results) > 1:  # a rollout: teacher metrics
        typer.echo("for a verdict on which is the better teacher for this policy (direction first, checked by "
                   "gold-tracked probes): rewardlab teachers")
    typer.echo(f"wrote {paths['report.html']} and {len(paths) - 1} other files")


def _num(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.4g}"


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("eval")(eval_command)
