"""CLI commands of this stage (registered by rewardlab.cli). Import only typer here; heavy imports go inside."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("lab")
    def lab(
        output: Path = typer.Option(..., "--output", "-o", help="Directory for report.html, results.json, PNGs."),
        preset: str = typer.Option("quick", "--preset", help="quick (< 5 min on 2 CPU cores) or full (GPU)."),
        only: list[str] = typer.Option(None, "--only", help="Run only this experiment (repeatable): "
                                       "razin, gao, coste, par, two_groups, transformer, stepwise."),
        seeds: int = typer.Option(None, "--seeds", help="Number of seeds (each seed = a new world)."),
        seed_offset: int = typer.Option(0, "--seed-offset", help="First seed (e.g. 5 reruns on worlds 5, 6, ...)."),
        label_noise: float = typer.Option(None, "--label-noise", help="Override the label-noise rate of every "
                                          "experiment's world, two_groups included (default: 0, and 0.25 "
                                          "for coste, which also sweeps 0/25/40%)."),
    ) -> None:
        """Reproduce reward-model findings (Razin, Gao, Coste, PAR, two groups) in a world with a known gold reward."""
        from rewardlab.io import check_output_dir, output_lock
        from rewardlab.lab.runner import run_lab

        check_output_dir(output)
        with output_lock(output):  # one writer: a second lab run would mix its results and figures with ours
            run_lab(output, preset=preset, only=only or None, seeds=seeds, label_noise=label_noise,
                    seed_offset=seed_offset)

    @app.command("study")
    def study(
        output: Path = typer.Option(..., "--output", "-o", help="Directory for study.json, the trained proxies and "
                                    "teachers/ (teachers.json, report.html)."),
        preset: str = typer.Option("quick", "--preset", help="quick (SmolLM2-135M: 2 seeds × 6 RL steps), standard "
                                   "(3 × 10), full (GPU) or test (a tiny random policy, seconds)."),
    ) -> None:
        """Teacher verdicts on a real pretrained LM: does RV or accuracy predict the realized gold gain?"""
        from rewardlab.errors import UserError
        from rewardlab.io import check_output_dir, output_lock
        from rewardlab.lab.teacher_study import PRESETS, run_study

        if preset not in PRESETS:
            raise UserError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        check_output_dir(output)
        with output_lock(output):
            result = run_study(output, preset, log=lambda s: typer.echo(s, err=True))
        for line in result["findings"]:
            typer.echo(line)
        typer.echo(f"verdict: {result['verdict']}")
        typer.echo(f"wrote {output / 'study.json'} and {output / 'teachers' / 'report.html'} "
                   f"({result['wall_time_s']:.0f} s)")
