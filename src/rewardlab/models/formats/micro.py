"""A MiCRo mixture checkpoint (``rewardlab train``'s mixture-train, :mod:`rewardlab.rewards.personalized`): an
ordinary rewardlab checkpoint whose K outputs are the heads (so ``rewardlab eval DIR`` also loads it, as the mean of
the heads) plus ``router.safetensors`` and a ``personalized`` entry in ``rewardlab.json``. The model:
:class:`~rewardlab.models.mixture.MixtureRewardModel`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rewardlab.errors import UserError
from rewardlab.models.formats.base import MANIFEST, Format, Loaded
from rewardlab.models.formats.pooled import load_reward_model
from rewardlab.models.mixture import MixtureRewardModel

ROUTER_FILE = "router.safetensors"


def detect(p: Path) -> bool:
    return (p / ROUTER_FILE).exists()


def save_mixture(model: MixtureRewardModel, tokenizer, out_dir: str | os.PathLike,
                 manifest: dict[str, Any] | None = None, personalized: dict[str, Any] | None = None,
                 **entries: Any) -> Path:
    """The heads as a rewardlab checkpoint + ``router.safetensors``, each written atomically (the router first: the
    manifest, written last, names it). ``rewardlab.json`` gets ``manifest``, then the ``personalized`` entry (``k``,
    ``router``, ``kind``, and ``personalized``'s keys), then ``entries``."""
    from rewardlab.io import save_safetensors
    from rewardlab.models.formats.bt import save_reward_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ROUTER_FILE}.tmp"
    save_safetensors({k: v.detach().contiguous().clone() for k, v in model.router.state_dict().items()}, tmp)
    os.replace(tmp, out / ROUTER_FILE)
    info = {"personalized": {"k": model.k, "router": ROUTER_FILE, "kind": "micro"} | (personalized or {}), **entries}
    return save_reward_model(model.rm, tokenizer, out, manifest=(manifest or {}) | info)


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None) -> Loaded:
    from safetensors.torch import load_file

    heads = load_reward_model(path, device=device, dtype=dtype, attn_implementation=attn_implementation)
    if "personalized" not in heads.manifest:
        raise UserError(f"{path}: not a mixture checkpoint (no 'personalized' entry in {MANIFEST})")
    model = MixtureRewardModel(heads.model)
    model.router.load_state_dict(load_file(str(Path(path) / heads.manifest["personalized"]["router"])))
    return Loaded(FORMAT, Path(path), model.to(device).eval(), heads.tokenizer, heads.manifest, heads.rendering)


FORMAT = Format("micro", "MiCRo mixture of reward heads with a context router", detect, load, manifest=MANIFEST)
