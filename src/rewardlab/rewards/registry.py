"""Resolve a reward *spec* string into a :class:`~rewardlab.rewards.base.Reward`.

Spec forms:
- ``PATH`` — a rewardlab checkpoint directory → :class:`~rewardlab.rewards.model.ModelReward`
- ``python:MODULE:FUNCTION`` — a Python callable ``fn(prompt, response) -> float`` → FunctionReward
- ``ensemble:METHOD[=LAMBDA]:SPEC1,SPEC2,...`` — mean / wco / uwo over member specs → EnsembleReward
- ``http://HOST:PORT`` / ``https://...`` — a running reward server (native protocol; ``openrlhf+http://...`` for an
  OpenRLHF-protocol server); the bearer token comes from ``$REWARDLAB_TOKEN`` → RemoteReward
"""

from __future__ import annotations

import importlib
import os
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
    if spec.startswith("ensemble:"):
        from rewardlab.rewards.ensemble import ensemble_from_spec

        return ensemble_from_spec(spec, lambda s: load_reward(s, device=device))
    if spec.startswith(("http://", "https://", "openrlhf+http://", "openrlhf+https://")):
        from rewardlab.rewards.remote import RemoteReward

        protocol, _, url = spec.rpartition("+")
        return RemoteReward(url, token=os.environ.get("REWARDLAB_TOKEN"), protocol=protocol or "native")
    path = Path(spec)
    if path.is_dir():
        from rewardlab.rewards.model import ModelReward

        return ModelReward.from_pretrained(path, device=device)
    raise UserError(f"reward spec {spec!r}: not a checkpoint directory or a known spec form "
                    "(python:MODULE:FN, ensemble:METHOD:SPECS, http://HOST:PORT)")
