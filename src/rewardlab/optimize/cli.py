"""CLI commands of this stage (registered by rewardlab.cli). Import only typer here; heavy imports go inside."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
