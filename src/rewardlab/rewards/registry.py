"""Resolve a reward *spec* string into a :class:`~rewardlab.rewards.base.Reward`.

Spec forms:
- ``PATH`` — a rewardlab checkpoint directory → :class:`~rewardlab.rewards.model.ModelReward`
- ``python:MODULE:FUNCTION`` — a Python callable ``fn(prompt, response) -> float`` → FunctionReward
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward, Reward


def load_reward(spec: str, device: str | None = None) -> Reward:
    """Build the Reward that ``spec`` names (see the module docstring for the forms)."""
    if spec.startswith("python:"):
        try:
            _, module_name, fn_name = spec.split(":", 2)
            fn = getattr(importlib.import_module(module_name), fn_name)
        except (ValueError, ImportError, AttributeError) as e:
            raise UserError(f"reward spec {spec!r}: cannot import ({e}); expected python:MODULE:FUNCTION") from None
        return FunctionReward(fn, name=fn_name)
    path = Path(spec)
    if path.is_dir():
        from rewardlab.rewards.model import ModelReward

        return ModelReward.from_pretrained(path, device=device)
    raise UserError(f"reward spec {spec!r}: not a checkpoint directory or a known spec form")
