"""Reward-model checkpoints: a directory that carries everything needed to score (DESIGN §3).

``model.safetensors`` (backbone **and** head), ``config.json`` (the backbone's HF config), the tokenizer files, and
``rewardlab.json`` (head spec, pooling, how inputs are rendered, max length, normalization stats, data hash, library
versions). Loading
rebuilds the backbone from its config and reads weights with safetensors only — never pickle. The files are
written to a temporary folder and moved into place one by one with ``os.replace``, manifest last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rewardlab.errors import UserError
from rewardlab.io import save_safetensors
from rewardlab.models.reward_model import RewardModel

MANIFEST = "rewardlab.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import tokenizers
    import transformers

    import rewardlab

    return {"rewardlab": rewardlab.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def _state_dict_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage (tied embeddings): save contiguous, unshared copies.
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def save_reward_model(model: RewardModel, tokenizer, out_dir: str | os.PathLike,
                      manifest: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically. ``manifest`` entries are merged into ``rewardlab.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".saving."))
    try:
        save_safetensors(_state_dict_for_saving(model), tmp / WEIGHTS, metadata={"format": "pt"})
        model.backbone.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        from rewardlab.data.tokenize import Rendering

        rendering = getattr(model, "rendering", None) or Rendering.for_tokenizer(tokenizer, decoder=not model.encoder)
        info = {"format_version": FORMAT_VERSION, "head": model.spec(), "versions": library_versions(),
                "rendering": rendering.to_dict()}
        info.update(manifest or {})
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
        # Move file by file with os.replace (atomic each); the manifest goes last, so a directory with a manifest
        # always has complete weights. Other files in ``out`` (metrics, checkpoints/) are left alone.
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == MANIFEST):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path) / MANIFEST
    if not p.exists():
        raise UserError(f"{path}: not a rewardlab checkpoint (no {MANIFEST})")
    return json.loads(p.read_text())


def check_loaded(result, where: str | os.PathLike) -> None:
    """Raise UserError when ``load_state_dict(strict=False)`` left real weights missing or found unknown ones.
    Derived buffers (attention bias masks, rotary frequencies) may be absent from a file; weights may not."""
    derived = (".bias_mask", ".masked_bias", ".attn.bias", "rotary_emb.inv_freq")
    missing = [k for k in result.missing_keys if not k.endswith(derived)]
    if missing or result.unexpected_keys:
        raise UserError(f"{where}: weights do not match the config (missing {missing[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]})")


def load_reward_model(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                      attn_implementation: str | None = None) -> tuple[RewardModel, Any, dict[str, Any]]:
    """Rebuild a RewardModel from a rewardlab checkpoint directory — or import a transformers / OpenRLHF reward
    model directory (:mod:`rewardlab.models.hf_import`). Returns ``(model, tokenizer, manifest)``; the manifest
    always has ``rendering`` (derived from the tokenizer for checkpoints that predate it)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from rewardlab.data.tokenize import Rendering

    if not (Path(path) / MANIFEST).exists():
        from rewardlab.models.hf_import import load_hf_reward_model

        return load_hf_reward_model(path, device=device, dtype=dtype, attn_implementation=attn_implementation)
    manifest = read_manifest(path)
    if manifest.get("kind") == "prm":  # per-step scores, not one pooled score: models/prm.py
        raise UserError(f"{path}: a process reward model (PRM); use the reward spec prm:{path} or models.prm.load_prm")
    config = AutoConfig.from_pretrained(path)
    if attn_implementation:
        config._attn_implementation = attn_implementation
    native = manifest["head"]["head"] == "native"
    backbone = (AutoModelForSequenceClassification if native else AutoModel).from_config(config)
    model = RewardModel.from_spec(backbone, manifest["head"])
    state = load_file(str(Path(path) / WEIGHTS))
    check_loaded(model.load_state_dict(state, strict=False), Path(path) / WEIGHTS)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if "rendering" not in manifest:
        manifest["rendering"] = Rendering.for_tokenizer(tokenizer, decoder=not model.encoder).to_dict()
    model.rendering = Rendering.from_dict(manifest["rendering"])
    model.to(device=device, dtype=dtype).eval()
    return model, tokenizer, manifest


def model_rendering(path: str | os.PathLike, chat_template: str | None = None):
    """``(tokenizer, rendering, max_length)`` of a model directory without loading its weights: a rewardlab
    checkpoint (its recorded rendering), a transformers/OpenRLHF reward model (as transformers tokenizes), or a base
    model (what ``train --base`` would record). ``chat_template`` overrides the template."""
    import dataclasses

    from transformers import AutoConfig

    from rewardlab.data.tokenize import Rendering
    from rewardlab.hub import local_model_path
    from rewardlab.models.backbone import _tokenizer, resolve_model_dir
    from rewardlab.models.hf_import import (
        hf_reward_kind,
        imported_max_length,
        imported_rendering,
        trl_reward_trainer_version,
    )
    from rewardlab.models.peft_import import is_peft_adapter, peft_base_dir
    from rewardlab.models.reward_model import is_encoder

    path = local_model_path(str(path))
    if is_peft_adapter(path):  # a reward-model adapter: its base's config, its own tokenizer when it has one
        p, base = Path(path), peft_base_dir(path)
        tokenizer, manifest = _tokenizer(p if (p / "tokenizer_config.json").exists() else base), {}
        config = AutoConfig.from_pretrained(base)
    else:
        p = resolve_model_dir(path)
        tokenizer = _tokenizer(p)  # the same pad fallback as every loader
        manifest = json.loads((p / MANIFEST).read_text()) if (p / MANIFEST).exists() else {}
        config = AutoConfig.from_pretrained(p)
    if "rendering" in manifest:
        rendering = Rendering.from_dict(manifest["rendering"])
    else:
        kind = hf_reward_kind(p)
        rendering = (imported_rendering(tokenizer, kind, encoder=is_encoder(config),
                                        trl_version=trl_reward_trainer_version(p)) if kind else
                     Rendering.for_tokenizer(tokenizer, decoder=not is_encoder(config)))
    if chat_template is not None:
        rendering = dataclasses.replace(rendering, chat_template=chat_template)
    return tokenizer, rendering, int(manifest.get("max_length") or imported_max_length(config))
