"""Reward models people already have: transformers ``*ForSequenceClassification`` directories (hub RMs such as
Skywork-Reward, TRL ``RewardTrainer`` outputs) and OpenRLHF ``train_rm`` outputs, loaded as :class:`RewardModel`.

- **Decoders** (Llama, GPT-2, Qwen, Mistral, ...): transformers scores ``score(h)`` with a bias-free linear ``score``
  on the final hidden state of the rightmost token that is not ``pad_token_id``. rewardlab keeps the base model and
  the same ``score`` weights, reads the rightmost non-pad token inside the attention mask (so a trailing eos is
  skipped when pad is eos, as in transformers) and passes mask-derived position ids, so the score of an unpadded
  input equals transformers' logits and padded batches score the same.
- **Encoders** (BERT, RoBERTa, DeBERTa, ...): the whole classifier is kept (``head="native"``): its pooler and head
  differ per architecture, and it pools the first token, which right-aligned batches leave in place.
- **OpenRLHF** (``openrlhf/models/model.py``, ``_get_reward_model``): the base model under its
  ``base_model_prefix`` plus ``nn.Linear(hidden, 1, bias=False)`` under ``value_head_prefix`` (``value_head`` by
  default, ``score`` is common), reward read at the last 1 of the attention mask, and in eval mode
  ``(r - mean) / std`` when ``config.normalize_reward`` (``mean``/``std`` stored in config.json). Both honoured,
  and so is its eos: OpenRLHF's ``RewardDataset`` and ``serve_rm`` end every sequence with eos (the reward is read
  there), so rewardlab appends it too (plain, templated and full texts, once).

- **TRL** ``RewardTrainer`` outputs: since TRL 0.24 the trainer appends eos to plain (non-conversational) text
  before tokenizing it (the reward is read there; conversational rows get the chat template only). A directory whose
  model card (README.md, written by TRL next to the weights) carries the ``reward-trainer`` tag and a TRL version
  >= 0.24 is scored the same way; earlier TRL versions, and directories without the card (``checkpoint-N``
  subfolders), are scored on ``tokenizer(text)`` as transformers' pipeline does.

PEFT/LoRA adapters (TRL with ``peft_config``) are merged onto their local base: :mod:`rewardlab.models.peft_import`.

Weights are read with safetensors only; a head missing from the file is an error, never a random head.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from rewardlab.errors import UserError
from rewardlab.models.checkpoint import check_loaded
from rewardlab.models.reward_model import RewardModel, is_encoder

MAX_IMPORTED_LENGTH = 2048  # default token budget of an imported RM (OpenRLHF's serve_rm default max_len)
TRL_EOS_SINCE = (0, 24)  # TRL's RewardTrainer appends eos to plain text from 0.24 on (its refactor, TRL PR #4093)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path) / "config.json"
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{p}:1: cannot read the model config ({e})") from None


def _weight_names(path: Path) -> set[str]:
    names: set[str] = set()
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as sf:
            names.update(sf.keys())
    return names


def _value_head_prefix(path: Path, config: dict[str, Any]) -> str | None:
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


def hf_reward_kind(path: str | os.PathLike) -> str | None:
    """``"transformers"`` for a ``*ForSequenceClassification`` directory, ``"openrlhf"`` for an OpenRLHF reward
    model, ``"peft"`` for a PEFT adapter directory, None for anything else (a base model, a causal LM, a rewardlab
    checkpoint)."""
    from rewardlab.models.peft_import import is_peft_adapter

    p = Path(path)
    if is_peft_adapter(p):
        return "peft"
    if not (p / "config.json").exists() or (p / "rewardlab.json").exists():
        return None
    config = read_config(p)
    if _value_head_prefix(p, config):
        return "openrlhf"
    if any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return "transformers"
    return None


def _require_safetensors(p: Path) -> None:
    if not any(p.glob("*.safetensors")):
        found = ", ".join(sorted(f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt")))
        raise UserError(f"{p}: no .safetensors weights{f' (found {found})' if found else ''}; rewardlab never loads "
                        "pickle — convert with `model.save_pretrained(dir, safe_serialization=True)`")


@contextlib.contextmanager
def _no_progress_bar():
    """transformers draws a 'Loading weights' bar per load; rewardlab's commands have their own output."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _load_transformers(p: Path, dtype: torch.dtype, attn_implementation: str | None, sep_id: int | None) -> RewardModel:
    from transformers import AutoModelForSequenceClassification

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with _no_progress_bar():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            p, use_safetensors=True, dtype=dtype, output_loading_info=True, **kwargs)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise UserError(f"{p}: weights missing from the checkpoint ({', '.join(missing[:3])}"
                        f"{', ...' if len(missing) > 3 else ''}); refusing to score with randomly initialised ones")
    return _from_classifier(model, sep_id)


def _from_classifier(model, sep_id: int | None) -> RewardModel:
    """A loaded transformers ``*ForSequenceClassification`` as a RewardModel (see the module docstring)."""
    k = int(model.config.num_labels)
    score = getattr(model, "score", None)
    if not is_encoder(model.config) and isinstance(score, nn.Linear):
        text_config = model.config.get_text_config()
        rm = RewardModel(model.base_model, num_outputs=k, pooling="last", head="linear",
                         head_bias=score.bias is not None, skip_token_id=text_config.pad_token_id)
        rm.head.load_state_dict(score.state_dict())
        return rm
    return RewardModel(model, num_outputs=k, head="native", segment_sep_id=sep_id)


def _load_openrlhf(p: Path, config: dict[str, Any], dtype: torch.dtype,
                   attn_implementation: str | None) -> RewardModel:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    prefix = _value_head_prefix(p, config)
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


def trl_reward_trainer_version(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(major, minor)`` of the TRL that trained ``path`` with ``RewardTrainer``, read from TRL's model card: the
    ``reward-trainer`` tag in README.md's front matter and its ``- TRL: X.Y...`` line; None without such a card."""
    import re

    import yaml

    try:
        text = (Path(path) / "README.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    front = re.match(r"---\s*\n(.*?)\n---", text, re.S)
    try:
        card = yaml.safe_load(front.group(1)) if front else None
    except yaml.YAMLError:
        return None
    tags = card.get("tags") if isinstance(card, dict) else None
    if not isinstance(tags, list) or "reward-trainer" not in tags:
        return None
    version = re.search(r"^- TRL: (\d+)\.(\d+)", text, re.M)
    return (int(version.group(1)), int(version.group(2))) if version else None


def load_hf_reward_model(path: str | os.PathLike, device: str | torch.device = "cpu",
                         dtype: torch.dtype | None = None,
                         attn_implementation: str | None = None) -> tuple[RewardModel, Any, dict[str, Any]]:
    """``(model, tokenizer, manifest)`` for a transformers or OpenRLHF reward-model directory (see the module
    docstring); the manifest is synthesized (``source`` says where the model came from)."""
    from rewardlab.models.backbone import _tokenizer

    p = Path(path)
    kind = hf_reward_kind(p)
    if kind == "peft":
        from rewardlab.models.peft_import import load_peft_classifier

        classifier, base = load_peft_classifier(p, dtype or torch.float32, attn_implementation)
        tokenizer = _tokenizer(p if (p / "tokenizer_config.json").exists() else base)
        model = _from_classifier(classifier, tokenizer.sep_token_id)
        config = read_config(base)
    elif kind is None:
        if not (p / "config.json").exists():
            raise UserError(f"{path}: not a reward model (no rewardlab.json and no config.json)")
        config = read_config(p)
        arch = ", ".join(config.get("architectures") or ["none"])
        if config.get("auto_map"):  # ArmoRM, InternLM2-Reward, Qwen2.5-Math-RM: a class defined by the repo's code
            raise UserError(f"{path}: {arch} is remote code (config.json auto_map), which rewardlab never runs; "
                            "score it with transformers' trust_remote_code and serve it, then use the server's URL "
                            "as the reward spec")
        raise UserError(f"{path}: not a reward model (no rewardlab.json; config.json names {arch}, not a "
                        "*ForSequenceClassification nor an OpenRLHF value head); a base or causal LM is a "
                        "`train --base` or a `--policy`")
    else:
        _require_safetensors(p)
        config = read_config(p)
        tokenizer = _tokenizer(p)
        if kind == "openrlhf":
            model = _load_openrlhf(p, config, dtype or torch.float32, attn_implementation)
        else:
            model = _load_transformers(p, dtype or torch.float32, attn_implementation, tokenizer.sep_token_id)
    dtype = dtype or torch.float32
    model.to(device=device, dtype=dtype).eval()
    trl = trl_reward_trainer_version(p)
    model.rendering = imported_rendering(tokenizer, kind, encoder=model.encoder, trl_version=trl)
    manifest = {"head": model.spec(), "max_length": imported_max_length(model.config),
                "rendering": model.rendering.to_dict(),
                "source": {"format": kind, "path": str(p), "architectures": config.get("architectures")}}
    if trl:
        manifest["source"]["trainer"] = "trl-reward-trainer {}.{}".format(*trl)
    if model.num_outputs > 1 and getattr(model.config, "problem_type", None) in (None, "single_label_classification"):
        manifest["scalar"] = "last_class_log_odds"  # a k-class classifier: see rewards.model.last_class_log_odds
    return model, tokenizer, manifest


def imported_rendering(tokenizer, kind: str | None, encoder: bool, trl_version: tuple[int, int] | None = None):
    """How an imported model's inputs become ids: one text per sequence, tokenized as transformers and TRL do
    (``tokenizer(text)``); OpenRLHF reward models also end every sequence with eos, as OpenRLHF does, and TRL >= 0.24
    ``RewardTrainer`` outputs end plain (not chat-templated) text with eos, as that trainer does."""
    import dataclasses

    from rewardlab.data.tokenize import Rendering

    has_eos = not encoder and getattr(tokenizer, "eos_token_id", None) is not None
    if kind == "openrlhf" and has_eos:
        rendering = Rendering.for_tokenizer(tokenizer, decoder=True, eos=True, joint=True)
        return dataclasses.replace(rendering, append_eos=tokenizer.eos_token_id, eos_last=True)
    if trl_version is not None and trl_version >= TRL_EOS_SINCE and has_eos:  # eos even after a post-processor's
        rendering = Rendering.for_tokenizer(tokenizer, decoder=True, eos=True, joint=True)  # own: TRL adds text
        return dataclasses.replace(rendering, append_eos=tokenizer.eos_token_id)
    return Rendering.for_tokenizer(tokenizer, decoder=not encoder, eos=False)


def imported_max_length(config) -> int:
    """Token budget of an imported model: its position limit (RoBERTa-style models lose 2 to ``padding_idx + 1``),
    at most :data:`MAX_IMPORTED_LENGTH`."""
    for name in ("max_position_embeddings", "n_positions", "max_seq_len"):
        v = getattr(config, name, None)
        if isinstance(v, int) and v > 0:
            v -= 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
            return min(v, MAX_IMPORTED_LENGTH)
    return MAX_IMPORTED_LENGTH
