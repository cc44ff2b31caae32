"""A process reward model directory: a rewardlab PRM checkpoint (``rewardlab.json`` with ``"kind": "prm"`` and the
step format under ``steps``) or a transformers ``*ForTokenClassification`` directory (TRL ``PRMTrainer`` outputs),
safetensors only; ``num_labels`` must be 1 or 2. Architectures that are not token classifiers (e.g. remote-code
PRMs such as Qwen2.5-Math-PRM) are not PRMs. The model: :class:`~rewardlab.models.prm.ProcessRewardModel`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from rewardlab.errors import UserError
from rewardlab.models.formats.base import (
    CONFIG,
    MANIFEST,
    WEIGHTS,
    Format,
    Loaded,
    check_loaded,
    config_architectures,
    require_safetensors,
    strict_from_pretrained,
)
from rewardlab.models.prm import KIND, ProcessRewardModel


def is_token_classifier(path: str | os.PathLike) -> bool:
    """A transformers ``*ForTokenClassification`` directory (without a rewardlab manifest)."""
    p = Path(path)
    if not (p / CONFIG).is_file() or (p / MANIFEST).exists():
        return False
    return any(a.endswith("ForTokenClassification") for a in config_architectures(p) or [])


def is_prm_dir(path: str | os.PathLike) -> bool:
    """A rewardlab PRM checkpoint or a transformers token-classification directory."""
    p = Path(path)
    manifest = p / MANIFEST
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text()).get("kind") == KIND
        except (OSError, ValueError, AttributeError):
            return False
    return is_token_classifier(p)


def _load_token_classifier(p: Path, dtype: torch.dtype, attn: str | None) -> ProcessRewardModel:
    from transformers import AutoModelForTokenClassification

    require_safetensors(p)
    model = strict_from_pretrained(AutoModelForTokenClassification, p, dtype, attn)
    k = int(model.config.num_labels)
    if k not in (1, 2):
        raise UserError(f"{p}: a token classifier with {k} labels; a PRM has 1 (a logit) or 2 (wrong, correct)")
    return ProcessRewardModel(model, num_labels=k, head="native")


def load_prm(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
             attn_implementation: str | None = None) -> Loaded:
    """The PRM of a rewardlab PRM checkpoint or a transformers token-classification directory (see the module
    docstring). ``manifest["steps"]`` is the :class:`~rewardlab.data.step_encode.StepFormat`,
    ``manifest["max_length"]`` the token budget; an imported model gets TRL's defaults (separator ``"\\n"``) and its
    position limit."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

    from rewardlab.data.step_encode import StepFormat
    from rewardlab.data.tokenize import Rendering
    from rewardlab.models.backbone import load_tokenizer
    from rewardlab.models.formats.hf_classifier import imported_max_length

    p = Path(path)
    if not is_prm_dir(p):
        raise UserError(f"{path}: not a process reward model (neither a rewardlab PRM checkpoint nor a transformers "
                        "*ForTokenClassification directory)")
    dtype = dtype or torch.float32
    tokenizer = load_tokenizer(p)
    if (p / MANIFEST).exists():
        manifest = json.loads((p / MANIFEST).read_text())
        head = manifest["head"]
        config = AutoConfig.from_pretrained(p)
        if attn_implementation:
            config._attn_implementation = attn_implementation
        native = head["head"] == "native"
        backbone = (AutoModelForTokenClassification if native else AutoModel).from_config(config)
        model = ProcessRewardModel(backbone, head["num_labels"], head["head"], head.get("head_bias", True))
        check_loaded(model.load_state_dict(load_file(str(p / WEIGHTS)), strict=False), p / WEIGHTS)
    else:
        model = _load_token_classifier(p, dtype, attn_implementation)
        config = model.config
        manifest = {"kind": KIND, "head": model.spec(), "max_length": imported_max_length(config),
                    "steps": StepFormat().to_dict(),
                    "source": {"format": "transformers", "path": str(p), "architectures": config.architectures}}
    if "rendering" not in manifest:
        manifest["rendering"] = Rendering.for_tokenizer(tokenizer, decoder=not model.encoder, eos=False).to_dict()
    model.rendering = Rendering.from_dict(manifest["rendering"])
    model.to(device=device, dtype=dtype).eval()
    return Loaded(FORMAT, p, model, tokenizer, manifest, model.rendering)


FORMAT = Format("prm", "process reward model (rewardlab PRM or transformers token classifier)", is_prm_dir,
                load_prm, manifest=MANIFEST)
