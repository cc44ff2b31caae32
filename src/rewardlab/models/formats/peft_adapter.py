"""PEFT/LoRA reward-model adapters (TRL ``RewardTrainer`` with ``peft_config``): a directory with
``adapter_config.json`` (``task_type: SEQ_CLS``) + ``adapter_model.safetensors``, the trained head saved through
``modules_to_save`` (``score``/``classifier``), on a base model named by ``base_model_name_or_path``.

Loaded as PEFT computes it: ``AutoModelForSequenceClassification.from_pretrained(base, num_labels=k)`` (k read from
the adapter's head), ``PeftModel.from_pretrained(model, adapter)``, merged. The base must be a local directory (or a
hub model in the HF cache); every weight the base lacks (a causal-LM base has no head) must be in the adapter, never
a random one. Safetensors only.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open

from rewardlab.errors import UserError
from rewardlab.models.formats.base import (
    CONFIG,
    MANIFEST,
    TOKENIZER_CONFIG,
    Format,
    Loaded,
    no_progress_bar,
    read_config,
    read_json,
    require_safetensors,
    strict_from_pretrained,
)
from rewardlab.models.formats.hf_classifier import finish_import, from_classifier

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
HEAD_KEYS = ("score.weight", "classifier.weight", "classifier.out_proj.weight")
MERGE_HINT = ("or merge it first: PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(BASE, "
              "num_labels=K), ADAPTER).merge_and_unload().save_pretrained(OUT, safe_serialization=True)")


def is_peft_adapter(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / ADAPTER_CONFIG).exists() and not (p / MANIFEST).exists()


def base_dir(path: str | os.PathLike) -> Path:
    """The local base-model directory of a reward-model adapter, checked (SEQ_CLS, safetensors, base present)."""
    p = Path(path)
    cfg = read_json(p / ADAPTER_CONFIG, "adapter config")
    task = cfg.get("task_type")
    if task != "SEQ_CLS":
        raise UserError(f"{p}: a PEFT adapter with task_type {task!r}, not a reward model (SEQ_CLS); a causal-LM "
                        "adapter is a `--policy` once merged")
    if not (p / ADAPTER_WEIGHTS).exists():
        found = ", ".join(sorted(f.name for f in p.glob("adapter_model.*")))
        raise UserError(f"{p}: no {ADAPTER_WEIGHTS}{f' (found {found})' if found else ''}; rewardlab never loads "
                        "pickle — save the adapter with `model.save_pretrained(dir, safe_serialization=True)`")
    base = cfg.get("base_model_name_or_path")
    for candidate in ([Path(base), p / base] if base else []):
        if (candidate / CONFIG).exists():
            return candidate
    from rewardlab.hub import hub_snapshot, is_hub_id

    if base and is_hub_id(base):  # TRL adapters name their base by hub id: its snapshot, downloaded if needed
        try:
            snapshot = hub_snapshot(base)
        except UserError as e:
            raise UserError(f"{p}: the base model of this adapter: {e}") from None
        if (snapshot / CONFIG).exists():
            return snapshot
    raise UserError(f"{p}: a PEFT/LoRA reward-model adapter whose base model {base!r} is neither a local directory "
                    "nor a hub model in the HF cache; download it and set base_model_name_or_path in "
                    f"adapter_config.json to its path, {MERGE_HINT}")


def tokenizer_dir(p: Path, base: Path) -> Path:
    """Where an adapter's tokenizer is: its own directory when it saved one, else its base's."""
    return p if (p / TOKENIZER_CONFIG).exists() else base


def load_classifier(path: str | os.PathLike, dtype: torch.dtype, attn_implementation: str | None = None):
    """``(merged *ForSequenceClassification model, base dir)`` of a reward-model adapter."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    p = Path(path)
    base = base_dir(p)
    require_safetensors(base)
    with safe_open(str(p / ADAPTER_WEIGHTS), framework="pt") as f:
        saved = {k.removeprefix(PEFT_PREFIX): f.get_slice(k).get_shape() for k in f.keys()}
    heads = [saved[k] for k in HEAD_KEYS if k in saved]
    kwargs = {"num_labels": int(heads[0][0])} if heads else {}
    model = strict_from_pretrained(AutoModelForSequenceClassification, base, dtype, attn_implementation,
                                   covered=set(saved), missing=f"weights in neither the base {base} nor the adapter",
                                   where=p, hint=" (train with modules_to_save=['score'] so the head is saved)",
                                   **kwargs)
    with no_progress_bar():
        merged = PeftModel.from_pretrained(model, p, is_trainable=False).merge_and_unload()
    return merged.eval(), base


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None) -> Loaded:
    from rewardlab.models.backbone import load_tokenizer

    p = Path(path)
    classifier, base = load_classifier(p, dtype or torch.float32, attn_implementation)
    tokenizer = load_tokenizer(tokenizer_dir(p, base))
    model = from_classifier(classifier, tokenizer.sep_token_id)
    return finish_import(FORMAT, p, model, tokenizer, read_config(base), device, dtype)


FORMAT = Format("peft", "PEFT/LoRA reward-model adapter (SEQ_CLS)", is_peft_adapter, load)
