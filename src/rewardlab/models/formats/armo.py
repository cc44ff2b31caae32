"""An ArmoRM checkpoint (``rewardlab train --objective armo``): a rewardlab checkpoint whose k-output linear head *is*
the attribute regression (so its pooled view gives the raw attribute scores) plus ``armo.safetensors`` (gate, β,
decorrelation coefficients) and an ``armo`` entry in ``rewardlab.json`` (attributes, verbosity, gate shape). The
model: :class:`~rewardlab.models.armo.ArmoRM`."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rewardlab.errors import UserError
from rewardlab.models.formats.base import MANIFEST, Format, Loaded
from rewardlab.models.formats.pooled import load_reward_model

GATE_FILE = "armo.safetensors"


def detect(p: Path) -> bool:
    return (p / GATE_FILE).exists()


def save_gate(out: str | os.PathLike, state: dict[str, torch.Tensor]) -> Path:
    """Write ``OUT/armo.safetensors`` atomically (``gate.*`` tensors, and ``decorrelation`` when there is one)."""
    from rewardlab.io import save_safetensors

    path = Path(out) / GATE_FILE
    save_safetensors(state, path.with_name(GATE_FILE + ".tmp"))
    os.replace(path.with_name(GATE_FILE + ".tmp"), path)
    return path


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None) -> Loaded:
    from safetensors.torch import load_file

    from rewardlab.models.armo import ArmoRM, FeatureExtractor, GatingNetwork

    heads = load_reward_model(path, device=device, dtype=dtype, attn_implementation=attn_implementation)
    info = heads.manifest.get("armo")
    if info is None or not detect(Path(path)):
        raise UserError(f"{path}: not an ArmoRM checkpoint (no 'armo' manifest entry / {GATE_FILE})")
    state = load_file(str(Path(path) / GATE_FILE))
    gate = GatingNetwork(state["gate.in_mean"].numel(), len(info["attributes"]), info["gate_hidden"],
                         info["gate_layers"])
    gate.load_state_dict({k[len("gate."):]: v for k, v in state.items() if k.startswith("gate.")})
    rm = heads.model
    extractor = FeatureExtractor(rm.backbone, heads.tokenizer, rm.pooling, int(heads.manifest.get("max_length", 512)),
                                 device=device)
    model = ArmoRM(extractor, rm.head.weight.detach().cpu(), rm.head.bias.detach().cpu(), info["attributes"], gate,
                   info.get("verbosity"), state.get("decorrelation"))
    return Loaded(FORMAT, Path(path), model, heads.tokenizer, heads.manifest, heads.rendering)


FORMAT = Format("armo", "ArmoRM (attribute heads + gating network)", detect, load, manifest=MANIFEST)
