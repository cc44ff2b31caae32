"""Model directories: the one place that answers "what kind of model directory is this?", and loads, peeks and saves
them. Nothing outside this package looks for marker files (``rewardlab.json``, ``adapter_config.json``, ...).

:data:`FORMATS` is the ordered table; the first format whose ``detect`` matches names the directory
(:func:`detect`). One leaf module per format, each with its ``FORMAT`` record (name, detect, load, manifest file);
in table order:

1. ``prm`` (:mod:`.prm`): a rewardlab PRM checkpoint (``rewardlab.json`` with ``kind: prm``) or a transformers
   ``*ForTokenClassification`` directory;
2. ``micro`` (:mod:`.micro`): a MiCRo mixture, ``router.safetensors`` next to a checkpoint;
3. ``dpo`` (:mod:`.dpo`): a DPO policy run, ``rewardlab_dpo.json`` next to a causal LM;
4. ``armo`` (:mod:`.armo`): an ArmoRM, ``armo.safetensors`` next to a checkpoint;
5. ``rewardlab`` (:mod:`.bt`): a BT / k-head rewardlab checkpoint, ``rewardlab.json``;
6. ``peft`` (:mod:`.peft_adapter`): a PEFT/LoRA SEQ_CLS adapter, ``adapter_config.json`` without ``rewardlab.json``;
7. ``openrlhf`` (:mod:`.openrlhf`): an OpenRLHF reward model, a value head named in config.json or the weights;
8. ``transformers`` (:mod:`.hf_classifier`): a ``*ForSequenceClassification`` in config.json's ``architectures``.

- :func:`load` loads a directory as its format: a :class:`Loaded` carrying model, tokenizer, manifest and rendering
  once (a chat-template override is applied by :meth:`Loaded.with_chat_template`, nowhere else). It unpacks as
  ``model, tokenizer, manifest``.
- :func:`load_reward_model` loads the pooled :class:`~rewardlab.models.reward_model.RewardModel` view
  (:mod:`.pooled`): rewardlab checkpoints (the heads of an ArmoRM or a mixture too) and imported reward models.
- :func:`peek` reads what a directory is and its manifest without loading weights; :func:`model_rendering` the
  tokenizer, rendering and token budget a model's inputs get.
- Saving: :func:`.bt.save_reward_model` (and :func:`.bt.update_manifest`), :func:`.micro.save_mixture`,
  :func:`.armo.save_gate`, :func:`.dpo.save_manifest`. The on-disk layouts are the ones rewardlab always wrote.
- Loading helpers every leaf uses (:mod:`.base`): :func:`.base.strict_from_pretrained` (safetensors only, no random
  weights), :func:`.base.check_loaded`, :func:`.base.require_safetensors`.

Adding a model kind:

1. write one leaf ``models/formats/NAME.py``: ``detect(dir) -> bool`` (files only, no weights), ``load(dir,
   device=, dtype=, attn_implementation=) -> Loaded`` and ``FORMAT = Format("NAME", title, detect, load)``, plus its
   save function; its model class goes in ``models/`` when it is new;
2. put ``NAME.FORMAT`` into :data:`FORMATS` before any format that would also match its directories;
3. write one Reward class in ``rewards/`` whose ``from_pretrained`` calls ``NAME.FORMAT.load`` and name it in
   :data:`rewardlab.rewards.registry.REWARD_CLASSES` (its load options included);
4. add the directory to ``tests/models/test_formats.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rewardlab.models.formats import armo, bt, dpo, hf_classifier, micro, openrlhf, peft_adapter, prm
from rewardlab.models.formats.base import MANIFEST, Format, Loaded, read_json, strict_from_pretrained
from rewardlab.models.formats.pooled import POOLED, load_reward_model, pooled_format

PRM, MICRO, DPO, ARMO = prm.FORMAT, micro.FORMAT, dpo.FORMAT, armo.FORMAT
CHECKPOINT, PEFT, OPENRLHF, TRANSFORMERS = bt.FORMAT, peft_adapter.FORMAT, openrlhf.FORMAT, hf_classifier.FORMAT
FORMATS: tuple[Format, ...] = (PRM, MICRO, DPO, ARMO, CHECKPOINT, PEFT, OPENRLHF, TRANSFORMERS)

__all__ = ["ARMO", "CHECKPOINT", "DPO", "FORMATS", "MICRO", "OPENRLHF", "PEFT", "POOLED", "PRM", "TRANSFORMERS",
           "Format", "Loaded", "Peek", "detect", "load", "load_reward_model", "model_rendering", "peek",
           "pooled_format", "strict_from_pretrained"]


def detect(path: str | os.PathLike) -> Format | None:
    """The format of the directory ``path`` (the first of :data:`FORMATS` that matches); None when it is not a
    directory or no format matches (a base model, a causal LM, anything else)."""
    p = Path(path)
    if not p.is_dir():
        return None
    return next((fmt for fmt in FORMATS if fmt.detect(p)), None)


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         attn_implementation: str | None = None, chat_template: str | None = None) -> Loaded:
    """``path`` loaded as its format (:func:`detect`); a directory no format matches gets the reason it is not a
    reward model."""
    fmt = detect(path)
    if fmt is None:
        raise hf_classifier.not_a_reward_model(path)
    return fmt.load(path, device=device, dtype=dtype, attn_implementation=attn_implementation
                    ).with_chat_template(chat_template)


@dataclass
class Peek:
    """What a directory is, without its weights: the format (None: none matches) and its manifest (``rewardlab.json``,
    a DPO run's ``rewardlab_dpo.json``; {} when the format has none or the directory is no model)."""

    format: Format | None
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)


def peek(path: str | os.PathLike) -> Peek:
    fmt = detect(path)
    p = Path(path)
    manifest = read_json(p / fmt.manifest, "manifest") if fmt is not None and fmt.manifest else {}
    return Peek(fmt, p, manifest)


def model_rendering(path: str | os.PathLike, chat_template: str | None = None):
    """``(tokenizer, rendering, max_length)`` of a model directory without loading its weights: a rewardlab
    checkpoint (its recorded rendering), a transformers/OpenRLHF reward model or adapter (as transformers tokenizes),
    or a base model (what ``train --base`` would record). ``chat_template`` overrides the template."""
    from transformers import AutoConfig

    from rewardlab.data.tokenize import Rendering
    from rewardlab.hub import local_model_path
    from rewardlab.models.backbone import load_tokenizer, resolve_model_dir
    from rewardlab.models.formats.base import with_chat_template
    from rewardlab.models.reward_model import is_encoder

    path = local_model_path(str(path))
    if PEFT.detect(Path(path)):  # a reward-model adapter: its base's config, its own tokenizer when it has one
        p, base = Path(path), peft_adapter.base_dir(path)
        tokenizer, manifest = load_tokenizer(peft_adapter.tokenizer_dir(p, base)), {}
        config = AutoConfig.from_pretrained(base)
    else:
        p = resolve_model_dir(path)
        tokenizer = load_tokenizer(p)  # the same pad fallback as every loader
        manifest = read_json(p / MANIFEST, "manifest") if CHECKPOINT.detect(p) else {}
        config = AutoConfig.from_pretrained(p)
    if "rendering" in manifest:
        rendering = Rendering.from_dict(manifest["rendering"])
    else:
        imported = next((fmt for fmt in (PEFT, OPENRLHF, TRANSFORMERS) if fmt.detect(p)), None)
        rendering = (hf_classifier.imported_rendering(tokenizer, imported.name, encoder=is_encoder(config),
                                                      trl_version=hf_classifier.trl_reward_trainer_version(p))
                     if imported is not None else Rendering.for_tokenizer(tokenizer, decoder=not is_encoder(config)))
    budget = int(manifest.get("max_length") or hf_classifier.imported_max_length(config))
    return tokenizer, with_chat_template(rendering, chat_template), budget
