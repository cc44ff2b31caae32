"""`rewardlab eval-prm DIR --data FILE [--data FILE2 ...]`: ProcessBench metrics, step-level F1 and best-of-n
accuracy per aggregation for a process reward model (see :mod:`rewardlab.evaluate.processbench`).

Several ``--data`` files (e.g. ProcessBench's gsm8k, math, olympiadbench and omnimath splits saved as files) are
reported one by one, plus ``mean_f1`` over them — ProcessBench's overall score. ``--report DIR`` writes the teacher
report (metrics.json, report.html, report.md and a best-of-n figure: :mod:`rewardlab.evaluate.prm_report`). Imports
only typer at module level.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from rewardlab.models.device import device_option, dtype_option


def eval_prm(
    model: str = typer.Argument(..., help="A rewardlab PRM checkpoint or a transformers *ForTokenClassification dir."),
    data: list[Path] = typer.Option(..., "--data", help="Stepwise rows (TRL stepwise or ProcessBench schema); "
                                    "repeat for several subsets."),
    threshold: float = typer.Option(0.5, help="A step is predicted wrong when its reward σ(logit) is below this."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the metrics as JSON here."),
    report: Path | None = typer.Option(None, "--report", help="Write the teacher report (metrics.json, report.html, "
                                       "report.md, bon_by_aggregation.png) into this directory."),
    batch_size: int = typer.Option(16, help="Solutions per forward pass."),
    max_length: int | None = typer.Option(None, help="Token budget (default: the model's)."),
    split: str | None = typer.Option(None, help="Split of a saved DatasetDict directory."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows (counted) instead of failing."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Evaluate a PRM on step-labelled data: every row is validated before the model is loaded, and the outputs
    (-o, --report) are checked before anything is read."""
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_dir, check_output_file, output_lock

    if not 0 < threshold < 1:
        raise UserError(f"--threshold must be in (0, 1), got {threshold}")
    inputs = {"--data": data, "MODEL": model}
    if output is not None:
        check_output_file(output)
        check_not_an_input(output, inputs)
    if report is not None:  # before the model runs: a bad path must not cost the evaluation
        if report.exists() and not report.is_dir():
            raise UserError(f"--report {report}: exists and is not a directory")
        check_output_dir(report, "--report")
        check_not_an_input(report, inputs, "--report")
    with output_lock(report, "--report") if report is not None else nullcontext():
        _evaluate(model, data, threshold, output, report, batch_size, max_length, split, skip_invalid, device, dtype)


def _evaluate(model: str, data: list[Path], threshold: float, output: Path | None, report: Path | None,
              batch_size: int, max_length: int | None, split: str | None, skip_invalid: bool, device: str,
              dtype: str) -> None:
    """The work of :func:`eval_prm`, once its outputs are checked (and --report locked)."""
    from rewardlab.data.stepwise import load_stepwise
    from rewardlab.evaluate.processbench import evaluate_prm, mean_f1
    from rewardlab.io import write_json_atomic
    from rewardlab.rewards.prm import PRMReward

    sets = {str(f): load_stepwise(f, split=split, skip_invalid=skip_invalid) for f in data}
    reward = PRMReward.from_pretrained(model, device=device, dtype=dtype, batch_size=batch_size,
                                       max_length=max_length)
    results = {name: evaluate_prm(reward, rows, threshold) for name, rows in sets.items()}
    for name, r in results.items():
        typer.echo(f"{name}: {r['examples']} solutions")
        pb = r.get("processbench")
        if pb:
            fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            typer.echo(f"  ProcessBench: error acc {fmt(pb['error_accuracy'])} ({pb['n_error']}), correct acc "
                       f"{fmt(pb['correct_accuracy'])} ({pb['n_correct']}), F1 {fmt(pb['f1'])}")
        if "step_f1" in r:
            e = r["step_f1"]["error"]
            typer.echo(f"  steps: error-step F1 {e['f1']:.4f} (precision {e['precision']:.4f}, recall "
                       f"{e['recall']:.4f}) over {e['steps']} labelled steps")
        bon = r.get("best_of_n")
        if bon and bon["groups"]:
            accs = ", ".join(f"{m} {bon[m]:.4f}" for m in ("min", "last", "product", "mean"))
            typer.echo(f"  best-of-n ({bon['groups']} prompts, n≈{bon['n_mean']:.1f}): {accs}; oracle "
                       f"{bon['oracle']:.4f}, random {bon['random']:.4f}")
        t = r["truncation"]
        if t["prompt_truncated"] or t["steps_dropped"] or t["steps_cut"]:
            typer.echo(f"  truncation: {t['prompt_truncated']} prompts cut, {t['steps_dropped']} steps dropped, "
                       f"{t['steps_cut']} steps cut (at max_length {reward.max_length})")
    summary = {"model": model, "separator": reward.separator, "max_length": reward.max_length,
               "threshold": threshold, "files": results}
    pbs = [r["processbench"] for r in results.values() if "processbench" in r]
    if len(results) > 1 and len(pbs) == len(results):
        summary["mean_f1"] = mean_f1(pbs)
        if summary["mean_f1"] is not None:
            typer.echo(f"ProcessBench mean F1 over {len(pbs)} files: {summary['mean_f1']:.4f}")
    if output is not None:
        write_json_atomic(output, summary)
        typer.echo(f"wrote {output}")
    if report is not None:
        from rewardlab.evaluate.prm_report import write_prm_report

        paths = write_prm_report(report, summary)
        typer.echo(f"wrote {paths['report.html']} and {paths['report.md']}")


def register(app: typer.Typer) -> None:
    app.command("eval-prm")(eval_prm)
