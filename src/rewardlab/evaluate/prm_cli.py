"""`rewardlab eval-prm DIR --data FILE [--data FILE2 ...]`: ProcessBench metrics, step-level F1 and best-of-n
accuracy per aggregation for a process reward model (see :mod:`rewardlab.evaluate.processbench`).

Several ``--data`` files (e.g. ProcessBench's gsm8k, math, olympiadbench and omnimath splits saved as files) are
reported one by one, plus ``mean_f1`` over them — ProcessBench's overall score. ``--report DIR`` writes the teacher
report (metrics.json, report.html, report.md and a best-of-n figure: :mod:`rewardlab.evaluate.prm_report`); the work is
:func:`rewardlab.evaluate.run.run_eval_prm`. Imports only typer at module level.
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
    from rewardlab.evaluate.run import run_eval_prm
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
        summary, paths = run_eval_prm(model, data, threshold=threshold, output=output, report=report,
                                      batch_size=batch_size, max_length=max_length, split=split,
                                      skip_invalid=skip_invalid, device=device, dtype=dtype)
    _print_summary(summary)
    if output is not None:
        typer.echo(f"wrote {output}")
    if report is not None:
        typer.echo(f"wrote {paths['report.html']} and {paths['report.md']}")


def _print_summary(summary: dict) -> None:
    """Per file: its ProcessBench numbers, step F1, best-of-n accuracies and truncation; then the mean F1."""
    for name, r in summary["files"].items():
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
                       f"{t['steps_cut']} steps cut (at max_length {summary['max_length']})")
    if summary.get("mean_f1") is not None:
        typer.echo(f"ProcessBench mean F1 over {len(summary['files'])} files: {summary['mean_f1']:.4f}")


def register(app: typer.Typer) -> None:
    app.command("eval-prm")(eval_prm)
