"""`rewardlab` command line: data | train | score | export | eval | optimize | teachers | serve | lab.

Each pipeline stage registers its own commands from ``<stage>/cli.py`` (``register(app)``); those modules import
only typer at module level so that ``rewardlab --help`` answers fast. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import errno
import sys

import typer

from rewardlab.errors import UserError

app = typer.Typer(
    name="rewardlab",
    help="Train, evaluate, optimize against and serve reward models — and measure whether they are good teachers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    from rewardlab.data import cli as data_cli
    from rewardlab.evaluate import cli as evaluate_cli
    from rewardlab.evaluate import judge_cli as evaluate_judge_cli
    from rewardlab.evaluate import prm_cli as evaluate_prm_cli
    from rewardlab.lab import cli as lab_cli
    from rewardlab.models import cli as models_cli
    from rewardlab.optimize import cli as optimize_cli
    from rewardlab.optimize import overopt_cli as optimize_overopt_cli
    from rewardlab.rewards import cli as rewards_cli
    from rewardlab.rewards import strength_cli as rewards_strength_cli
    from rewardlab.serve import cli as serve_cli
    from rewardlab.teachers import cli as teachers_cli
    from rewardlab.train import cli as train_cli
    from rewardlab.train import mixture_cli as train_mixture_cli

    for module in (data_cli, train_cli, rewards_cli, rewards_strength_cli, evaluate_judge_cli, train_mixture_cli,
                   models_cli, evaluate_cli, evaluate_prm_cli, optimize_cli, optimize_overopt_cli, teachers_cli,
                   serve_cli, lab_cli):
        module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from rewardlab import __version__

        typer.echo(f"rewardlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                       callback=_print_version)) -> None:
    """Train, evaluate, optimize against and serve reward models — and measure whether they are good teachers."""


_register_all()


STORAGE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EROFS: "read-only file system"}


def main() -> None:
    """Console entry point: user errors (bad data, bad flags) print one line and exit 2, no traceback. A full or
    read-only disk met while writing prints one line naming the path and exits 1: atomic writes have removed their
    temp files and left the previous file in place, and resumable runs (train, score, optimize) continue with
    --resume once there is room."""
    try:
        app()
    except UserError as e:
        for line in e.lines():
            print(line, file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if e.errno not in STORAGE_ERRORS:
            raise
        where = e.filename or "an output file"
        print(f"{where}: {STORAGE_ERRORS[e.errno]} while writing; nothing half-written was kept. Free space (or "
              "choose another output) and rerun; train, score and optimize runs continue from their last "
              "checkpoint or chunk with --resume", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
