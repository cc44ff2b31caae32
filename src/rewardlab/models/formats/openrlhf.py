"""OpenRLHF ``train_rm`` outputs (``openrlhf/models/model.py``, ``_get_reward_model``), loaded as
:class:`RewardModel`: the base model under its ``base_model_prefix`` plus ``nn.Linear(hidden, 1, bias=False)`` under
``value_head_prefix`` (``value_head`` by default, ``score`` is common), reward read at the last 1 of the attention
mask, and in eval mode ``(r - mean) / std`` when ``config.normalize_reward`` (``mean``/``std`` stored in
config.json). Both honoured, and so is its eos: OpenRLHF's ``RewardDataset`` and ``serve_rm`` end every sequence
with eos (the reward is read there), so rewardlab appends it too (plain, templated and full texts, once).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from rewardlab.errors import UserError
from rewardlab.models.formats.base import (
    CONFIG,
    MANIFEST,
    Format,
    Loaded,
    check_loaded,
    read_config,
    read_json,
    require_safetensors,
)
from rewardlab.models.formats.hf_classifier import finish_import
from rewardlab.models.reward_model import RewardModel


def _weight_names(path: Path) -> set[str]:
    names: set[str] = set()
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as sf:
            names.update(sf.keys())
    return names


def value_head_prefix(path: Path, config: dict[str, Any]) -> str | None:
    """The OpenRLHF value-head prefix of a directory, or None when it is not an OpenRLHF reward model."""
    prefix = config.get("value_head_prefix")
    if prefix:
        return str(prefix)
    architectures = config.get("architectures") or []
    if "normalize_reward" in config or any(a in ("RewardModel", "CriticModel") for a in architectures):
        names = _weight_names(path)
        for candidate in ("value_head", "score"):
            if f"{candidate}.weight" in names:
                return candidate
    return None


def detect(p: Path) -> bool:
    if not (p / CONFIG).exists() or (p / MANIFEST).exists():
        return False
    return value_head_prefix(p, read_json(p / CONFIG, "model config")) is not None


def _load_model(p: Path, config: dict[str, Any], dtype: torch.dtype, attn_implementation: str | None) -> RewardModel:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    prefix = value_head_prefix(p, config)
    hf_config = AutoConfig.from_pretrained(p)
    if attn_implementation:
        hf_config._attn_implementation = attn_implementation
    backbone = AutoModel.from_config(hf_config, dtype=dtype)
    base = backbone.base_model_prefix
    state: dict[str, torch.Tensor] = {}
    for f in sorted(p.glob("*.safetensors")):
        state.update(load_file(str(f)))
    head_key = f"{prefix}.weight"
    if head_key not in state:
        raise UserError(f"{p}: OpenRLHF reward model without its value head ({head_key} not in the weights)")
    head_w = state.pop(head_key)
    body = {k[len(base) + 1:] if k.startswith(base + ".") else k: v for k, v in state.items()}
    check_loaded(backbone.load_state_dict(body, strict=False), p)
    mean = std = None
    if config.get("normalize_reward") and "mean" in config and "std" in config:
        mean, std = float(config["mean"]), float(config["std"])
    rm = RewardModel(backbone, num_outputs=1, pooling="last", head="linear", head_bias=False,
                     output_mean=mean, output_std=std)
    rm.head.weight.data.copy_(head_w.reshape(1, -1))
    return rm


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None) -> Loaded:
    from rewardlab.models.backbone import load_tokenizer

    p = Path(path)
    require_safetensors(p)
    config = read_config(p)
    tokenizer = load_tokenizer(p)
    model = _load_model(p, config, dtype or torch.float32, attn_implementation)
    return finish_import(FORMAT, p, model, tokenizer, config, device, dtype)


FORMAT = Format("openrlhf", "OpenRLHF reward model (base model + value head)", detect, load)
