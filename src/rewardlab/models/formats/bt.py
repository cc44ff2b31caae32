"""A rewardlab checkpoint: a directory that carries everything needed to score.

``model.safetensors`` (backbone **and** head), ``config.json`` (the backbone's HF config), the tokenizer files, and
``rewardlab.json`` (head spec, pooling, how inputs are rendered, max length, normalization stats, data hash, library
versions). Loading rebuilds the backbone from its config and reads weights with safetensors only — never pickle.
The files are written to a temporary folder and moved into place one by one with ``os.replace``, manifest last.

Detected by ``rewardlab.json``. The formats built on it (a PRM, an ArmoRM, a MiCRo mixture) come before this one in
the table; :func:`load` reads any of them as the pooled :class:`RewardModel` it holds and refuses a PRM.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from rewardlab.errors import UserError
from rewardlab.io import save_safetensors
from rewardlab.models.formats.base import MANIFEST, WEIGHTS, Format, Loaded, check_loaded
from rewardlab.models.reward_model import RewardModel

FORMAT_VERSION = 1


def detect(p: Path) -> bool:
    return (p / MANIFEST).exists()


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
    from rewardlab.data.tokenize import Rendering

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".saving."))
    try:
        save_safetensors(_state_dict_for_saving(model), tmp / WEIGHTS, metadata={"format": "pt"})
        model.backbone.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
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
    """``DIR/rewardlab.json``; UserError when ``DIR`` is not a rewardlab checkpoint."""
    p = Path(path) / MANIFEST
    if not p.exists():
        raise UserError(f"{path}: not a rewardlab checkpoint (no {MANIFEST})")
    return json.loads(p.read_text())


def trained_from(path: str | os.PathLike) -> str | None:
    """The ``base`` a rewardlab checkpoint directory was trained from (None when ``path`` is not one)."""
    try:
        return json.loads((Path(path) / MANIFEST).read_text()).get("base")
    except (OSError, ValueError, AttributeError):
        return None


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None) -> Loaded:
    """Rebuild the RewardModel of a rewardlab checkpoint; the manifest always has ``rendering`` (derived from the
    tokenizer for checkpoints that predate it)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from rewardlab.data.tokenize import Rendering

    manifest = read_manifest(path)
    if manifest.get("kind") == "prm":  # per-step scores, not one pooled score: formats/prm.py
        raise UserError(f"{path}: a process reward model (PRM); use the reward spec prm:{path} or "
                        "models.formats.prm.load_prm")
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
    return Loaded(FORMAT, Path(path), model, tokenizer, manifest, model.rendering)


def writable_manifest(path: str | os.PathLike) -> Path:
    """``DIR/rewardlab.json`` when it can be rewritten; UserError otherwise (not a checkpoint, not writable)."""
    d = Path(path)
    read_manifest(d)  # UserError: not a rewardlab checkpoint (no rewardlab.json)
    manifest = d / MANIFEST
    if not (os.access(manifest, os.W_OK) and os.access(d, os.W_OK | os.X_OK)):
        raise UserError(f"{manifest}: not writable")
    return manifest


def update_manifest(path: str | os.PathLike, key: str, value: Any) -> Any:
    """Set ``key`` in ``DIR/rewardlab.json`` atomically, keeping every other key; returns the old value (or None)."""
    from rewardlab.io import write_json_atomic

    manifest_path = writable_manifest(path)
    manifest = json.loads(manifest_path.read_text())
    old = manifest.get(key)
    manifest[key] = value
    write_json_atomic(manifest_path, manifest)
    return old


FORMAT = Format("rewardlab", "rewardlab reward-model checkpoint", detect, load, manifest=MANIFEST)
