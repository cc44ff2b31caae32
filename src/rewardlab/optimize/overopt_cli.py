"""`rewardlab overopt RUN [RUN ...]`: a family of overoptimization curves with their Gao fits
(:func:`rewardlab.optimize.overopt.compare_runs`). Imports only typer at module level."""

from __future__ import annotations

from pathlib import Path

import typer


def overopt(
    runs: list[Path] = typer.Argument(..., help="Optimize run directories (rewardlab optimize bon|rloo|grpo|raft|dpo "
                                      "-o DIR, run with --gold)."),
    label: list[str] = typer.Option([], "--label", help="A name per run, in the order given (default: the "
                                    "directory names); numbers (e.g. RM sizes) when --by label."),
    by: str | None = typer.Option(None, "--by", help="Order the runs by 'label' (the labels as numbers) or by a "
                                  "dotted key of each run's summary.json (e.g. args.kl_coef). Default: as given."),
    form: str | None = typer.Option(None, "--form", help="Fit every run with this form (bon | rl) instead of its "
                                    "own (bon for best-of-n runs, rl for the RL loops)."),
    output: Path = typer.Option(Path("overopt.png"), "--output", "-o", help="The overlay figure (PNG)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the table and the peak movement as JSON."),
) -> None:
    """Overlay the gold-vs-√KL curves of several optimize runs with each run's Gao et al. (2022) fit; print α, β, R²,
    the fitted peak d* and the gold there per run, flag fits outside Gao's form (α ≤ 0 or β ≤ 0), and say how the
    peak moves across the runs."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from rewardlab.errors import UserError
    from rewardlab.io import check_output_file, write_json_atomic
    from rewardlab.optimize.overopt import compare_runs

    if form not in (None, "bon", "rl"):
        raise UserError(f"--form must be bon or rl, got {form!r}")
    check_output_file(output)
    if json_out:
        check_output_file(json_out, "--json")
    result = compare_runs(runs, label, by, output, form)
    table = Table(title=f"Gao et al. fits, runs {result['order']} (d* and g(d*): the fitted peak; best: the largest "
                  "gold gain measured, at d)", box=box.SIMPLE_HEAD)
    for col in ("run", "form", "n", "α", "β", "R²", "d*", "g(d*)", "best (d)"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in result["runs"]:
        key = f" ({by}={r['key']:g})" if r["key"] is not None and by != "label" else ""
        table.add_row(r["label"] + key, r["form"], str(r["points"]),
                      *(_fmt(r[k]) for k in ("alpha", "beta", "r2", "d_peak", "gold_peak")),
                      f"{r['observed_best_gold']:.3g} ({r['observed_best_d']:.3g})")
    console = Console()
    console.print(table)
    for r in result["runs"]:
        if r["problem"]:
            console.print(f"FLAG {r['label']}: {r['problem']}")
        elif r["peak_beyond_data"]:
            console.print(f"note {r['label']}: d* = {r['d_peak']:.4g} lies past the largest d measured "
                          f"({r['d_max']:.3g}): the peak is the fit's extrapolation")
    for key, what in (("peak_d", "fitted peak d*"), ("peak_gold", "gold at the peak")):
        move = result[key]
        steps = ", ".join(f"{s['from']} → {s['to']}: {s['change']:+.4g}" for s in move["steps"])
        console.print(f"{what}: {move['direction']}" + (f" ({steps})" if steps else "")
                      + (f"; no peak: {', '.join(move['without_peak'])}" if move["without_peak"] else ""))
    if json_out:
        write_json_atomic(json_out, result)
    console.print(f"wrote {output}" + (f" and {json_out}" if json_out else ""))


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def register(app: typer.Typer) -> None:
    app.command("overopt")(overopt)
