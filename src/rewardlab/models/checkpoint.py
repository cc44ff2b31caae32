"""Reward-model checkpoints: the names callers import to save and load them. The code is the format
seam's (:mod:`rewardlab.models.formats`; a rewardlab checkpoint is :mod:`rewardlab.models.formats.bt`), which also
loads imported transformers / OpenRLHF / PEFT reward models through :func:`load_reward_model`."""

from __future__ import annotations

from rewardlab.models.formats import load_reward_model, model_rendering
from rewardlab.models.formats.base import MANIFEST, WEIGHTS, check_loaded
from rewardlab.models.formats.bt import FORMAT_VERSION, library_versions, read_manifest, save_reward_model

__all__ = ["FORMAT_VERSION", "MANIFEST", "WEIGHTS", "check_loaded", "library_versions", "load_reward_model",
           "model_rendering", "read_manifest", "save_reward_model"]
