"""A DPO policy run (``rewardlab train --objective dpo``): a ``save_pretrained`` causal LM (safetensors) + tokenizer,
plus ``rewardlab_dpo.json`` (β, the reference's path — relative to the run directory when it is saved inside it, as
a tiny base's ``reference/`` —, max_length, metrics). Loaded as the policy and its reference (``parts["reference"]``);
any causal-LM directory loads the same way when the reference is given."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rewardlab.errors import UserError
from rewardlab.models.formats.base import Format, Loaded, read_json

DPO_MANIFEST = "rewardlab_dpo.json"


def detect(p: Path) -> bool:
    return (p / DPO_MANIFEST).exists()


def read_run(path: str | os.PathLike) -> dict[str, Any]:
    """``DIR/rewardlab_dpo.json`` ({} when ``DIR`` is not a DPO run)."""
    p = Path(path) / DPO_MANIFEST
    return read_json(p, "DPO run manifest") if p.exists() else {}


def save_manifest(out: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write ``OUT/rewardlab_dpo.json`` atomically (after the policy, tokenizer and reference: it marks a complete
    run)."""
    from rewardlab.io import write_json_atomic

    path = Path(out) / DPO_MANIFEST
    write_json_atomic(path, info)
    return path


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None, reference: str | os.PathLike | None = None) -> Loaded:
    """The policy at ``path`` (model, tokenizer) and its reference (``parts["reference"]``): ``reference``, or the one
    the run's manifest names."""
    from rewardlab.models.backbone import load_causal_lm

    p = Path(path)
    info = read_run(p)
    if reference is None:
        if "reference" not in info:
            raise UserError(f"{p}: no {DPO_MANIFEST} naming the reference; use dpo:POLICY:REFERENCE")
        reference = p / info["reference"]
    policy, tokenizer = load_causal_lm(p, device, dtype=dtype, attn_implementation=attn_implementation)
    ref, _ = load_causal_lm(reference, device, dtype=dtype, attn_implementation=attn_implementation)
    return Loaded(FORMAT, p, policy, tokenizer, info, parts={"reference": ref, "reference_path": Path(reference)})


FORMAT = Format("dpo", "DPO policy run (policy + reference: an implicit reward)", detect, load, manifest=DPO_MANIFEST)
