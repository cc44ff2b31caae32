"""PEFT/LoRA reward-model adapters (TRL ``RewardTrainer`` with ``peft_config``): a directory with
``adapter_config.json`` (``task_type: SEQ_CLS``) + ``adapter_model.safetensors``, the trained head saved through
``modules_to_save`` (``score``/``classifier``), on a base model named by ``base_model_name_or_path``.

Loaded as PEFT computes it: ``AutoModelForSequenceClassification.from_pretrained(base, num_labels=k)`` (k read from
the adapter's head), ``PeftModel.from_pretrained(model, adapter)``, merged. The base must be a local directory; every
weight the base lacks (a causal-LM base has no head) must be in the adapter, never a random one. Safetensors only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from rewardlab.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
HEAD_KEYS = ("score.weight", "classifier.weight", "classifier.out_proj.weight")
MERGE_HINT = ("or merge it first: PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(BASE, "
              "num_labels=K), ADAPTER).merge_and_unload().save_pretrained(OUT, safe_serialization=True)")


def is_peft_adapter(path: str | Path) -> bool:
    p = Path(path)
    return (p / ADAPTER_CONFIG).exists() and not (p / "rewardlab.json").exists()


def _adapter_config(p: Path) -> dict:
    try:
        return json.loads((p / ADAPTER_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{p / ADAPTER_CONFIG}:1: cannot read the adapter config ({e})") from None


def peft_base_dir(path: str | Path) -> Path:
    """The local base-model directory of a reward-model adapter, checked (SEQ_CLS, safetensors, base present)."""
    p = Path(path)
    cfg = _adapter_config(p)
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
        if (candidate / "config.json").exists():
            return candidate
    from rewardlab.hub import hub_snapshot, is_hub_id

    if base and is_hub_id(base):  # TRL adapters name their base by hub id: its snapshot, downloaded if needed
        try:
            snapshot = hub_snapshot(base)
        except UserError as e:
            raise UserError(f"{p}: the base model of this adapter: {e}") from None
        if (snapshot / "config.json").exists():
            return snapshot
    raise UserError(f"{p}: a PEFT/LoRA reward-model adapter whose base model {base!r} is neither a local directory "
                    "nor a hub model in the HF cache; download it and set base_model_name_or_path in "
                    f"adapter_config.json to its path, {MERGE_HINT}")


def load_peft_classifier(path: str | Path, dtype: torch.dtype, attn_implementation: str | None = None):
    """``(merged *ForSequenceClassification model, base dir)`` of a reward-model adapter."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from rewardlab.models.hf_import import _no_progress_bar, _require_safetensors

    p = Path(path)
    base = peft_base_dir(p)
    _require_safetensors(base)
    with safe_open(str(p / ADAPTER_WEIGHTS), framework="pt") as f:
        saved = {k.removeprefix(PEFT_PREFIX): f.get_slice(k).get_shape() for k in f.keys()}
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    heads = [saved[k] for k in HEAD_KEYS if k in saved]
    if heads:
        kwargs["num_labels"] = int(heads[0][0])
    with _no_progress_bar():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            base, use_safetensors=True, dtype=dtype, output_loading_info=True, **kwargs)
    uncovered = sorted(k for k in info.get("missing_keys") or () if k not in saved)
    if uncovered:
        raise UserError(f"{p}: weights in neither the base {base} nor the adapter ({', '.join(uncovered[:3])}"
                        f"{', ...' if len(uncovered) > 3 else ''}); refusing to score with randomly initialised ones "
                        "(train with modules_to_save=['score'] so the head is saved)")
    with _no_progress_bar():
        merged = PeftModel.from_pretrained(model, p, is_trainable=False).merge_and_unload()
    return merged.eval(), base
