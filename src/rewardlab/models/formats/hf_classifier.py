"""Reward models people already have, as transformers saves them: ``*ForSequenceClassification`` directories (hub
RMs such as Skywork-Reward, TRL ``RewardTrainer`` outputs), loaded as :class:`RewardModel`. This leaf also holds
what every imported reward model shares (:func:`finish_import`: tokenizer-derived rendering, token budget, the
synthesized manifest); OpenRLHF reward models and PEFT adapters (:mod:`.openrlhf`, :mod:`.peft_adapter`) use it.

- **Decoders** (Llama, GPT-2, Qwen, Mistral, ...): transformers scores ``score(h)`` with a bias-free linear ``score``
  on the final hidden state of the rightmost token that is not ``pad_token_id``. rewardlab keeps the base model and
  the same ``score`` weights, reads the rightmost non-pad token inside the attention mask (so a trailing eos is
  skipped when pad is eos, as in transformers) and passes mask-derived position ids, so the score of an unpadded
  input equals transformers' logits and padded batches score the same.
- **Encoders** (BERT, RoBERTa, DeBERTa, ...): the whole classifier is kept (``head="native"``): its pooler and head
  differ per architecture, and it pools the first token, which right-aligned batches leave in place.
- **TRL** ``RewardTrainer`` outputs: since TRL 0.24 the trainer appends eos to plain (non-conversational) text
  before tokenizing it (the reward is read there; conversational rows get the chat template only). A directory whose
  model card (README.md, written by TRL next to the weights) carries the ``reward-trainer`` tag and a TRL version
  >= 0.24 is scored the same way; earlier TRL versions, and directories without the card (``checkpoint-N``
  subfolders), are scored on ``tokenizer(text)`` as transformers' pipeline does.

Weights are read with safetensors only; a head missing from the file is an error, never a random head.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rewardlab.errors import UserError
from rewardlab.models.formats.base import (
    CONFIG,
    MANIFEST,
    Format,
    Loaded,
    config_architectures,
    read_config,
    require_safetensors,
    strict_from_pretrained,
)
from rewardlab.models.reward_model import RewardModel, is_encoder

MAX_IMPORTED_LENGTH = 2048  # default token budget of an imported RM (OpenRLHF's serve_rm default max_len)
TRL_EOS_SINCE = (0, 24)  # TRL's RewardTrainer appends eos to plain text from 0.24 on (its refactor, TRL PR #4093)


def detect(p: Path) -> bool:
    """A ``*ForSequenceClassification`` config without a rewardlab manifest (an OpenRLHF value head is detected
    before this format)."""
    if not (p / CONFIG).exists() or (p / MANIFEST).exists():
        return False
    return any(a.endswith("ForSequenceClassification") for a in config_architectures(p) or [])


def from_classifier(model, sep_id: int | None) -> RewardModel:
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


def finish_import(fmt: Format, p: Path, model: RewardModel, tokenizer, config: dict[str, Any],
                  device: str | torch.device, dtype: torch.dtype | None) -> Loaded:
    """An imported reward model placed on ``device``/``dtype`` in eval mode, with its rendering and a synthesized
    manifest (``source`` says where the model came from)."""
    model.to(device=device, dtype=dtype or torch.float32).eval()
    trl = trl_reward_trainer_version(p)
    model.rendering = imported_rendering(tokenizer, fmt.name, encoder=model.encoder, trl_version=trl)
    manifest = {"head": model.spec(), "max_length": imported_max_length(model.config),
                "rendering": model.rendering.to_dict(),
                "source": {"format": fmt.name, "path": str(p), "architectures": config.get("architectures")}}
    if trl:
        manifest["source"]["trainer"] = "trl-reward-trainer {}.{}".format(*trl)
    if model.num_outputs > 1 and getattr(model.config, "problem_type", None) in (None, "single_label_classification"):
        manifest["scalar"] = "last_class_log_odds"  # a k-class classifier: see rewards.model.last_class_log_odds
    return Loaded(fmt, p, model, tokenizer, manifest, model.rendering)


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None) -> Loaded:
    from transformers import AutoModelForSequenceClassification

    from rewardlab.models.backbone import load_tokenizer

    p = Path(path)
    require_safetensors(p)
    config = read_config(p)
    tokenizer = load_tokenizer(p)
    classifier = strict_from_pretrained(AutoModelForSequenceClassification, p, dtype or torch.float32,
                                        attn_implementation)
    return finish_import(FORMAT, p, from_classifier(classifier, tokenizer.sep_token_id), tokenizer, config, device,
                         dtype)


def not_a_reward_model(path: str | os.PathLike) -> UserError:
    """Why ``path`` is no reward model any format loads (no manifest; a base model, a causal LM, remote code)."""
    p = Path(path)
    if not (p / CONFIG).exists():
        return UserError(f"{path}: not a reward model (no rewardlab.json and no config.json)")
    config = read_config(p)
    arch = ", ".join(config.get("architectures") or ["none"])
    if config.get("auto_map"):  # ArmoRM, InternLM2-Reward, Qwen2.5-Math-RM: a class defined by the repo's code
        return UserError(f"{path}: {arch} is remote code (config.json auto_map), which rewardlab never runs; score it "
                         "with transformers' trust_remote_code and serve it, then use the server's URL as the reward "
                         "spec")
    return UserError(f"{path}: not a reward model (no rewardlab.json; config.json names {arch}, not a "
                     "*ForSequenceClassification nor an OpenRLHF value head); a base or causal LM is a "
                     "`train --base` or a `--policy`")


FORMAT = Format("transformers", "transformers *ForSequenceClassification reward model", detect, load)
