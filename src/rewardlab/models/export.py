"""Export a reward model as a standard transformers ``*ForSequenceClassification`` directory.

The result loads with ``AutoModelForSequenceClassification.from_pretrained(OUT)`` with no missing keys and gives
the same scores, so it can be handed to vLLM (``--task classify``/``reward``), OpenRLHF or TRL.

- Decoder backbone, last-token pooling, linear head → ``<Arch>ForSequenceClassification``: the backbone under
  its ``base_model_prefix``, the head as the bias-free ``score``. A head bias ``b`` (and an OpenRLHF-style output
  normalization ``(r - μ)/σ``, folded as ``W/σ``, ``(b - μ)/σ``) cannot live in ``score``; it is folded into the
  bias of the final norm instead: with ``δ = W⁺ b`` (pseudo-inverse), ``W (h + δ) = W h + b`` exactly, and the
  final norm's output feeds nothing but ``score``. A final norm without bias (Llama's RMSNorm) cannot take it:
  export then refuses unless ``drop_bias`` (scores shift by the constant ``b``; pairwise preferences unchanged).
- ``head="native"`` models (imported classifiers, e.g. BERT) are saved as they are.
- Mean/CLS pooling on our own head and MLP heads have no transformers equivalent: refused with the reason.
LoRA runs need nothing special: their checkpoints hold the merged weights.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from rewardlab.errors import UserError
from rewardlab.models.formats import load_reward_model
from rewardlab.models.reward_model import RewardModel

BIAS_ATOL = 1e-7


def _final_norm(base: torch.nn.Module) -> torch.nn.Module | None:
    """The norm applied to the backbone's last hidden state (GPT-2 ``ln_f``, Llama ``norm``, ...)."""
    for name in ("ln_f", "norm", "final_layer_norm", "final_layernorm", "norm_f"):
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module) and hasattr(module, "weight"):
            return module
    return None


def _pad_id_for_hf_pooling(tokenizer) -> int | None:
    """transformers' decoder classifiers read the last token that is not ``pad_token_id``: with pad == eos they
    skip the eos our sequences end with. Use another special token as pad then (unk, bos), in config and tokenizer."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is None or pad != eos:
        return pad
    for name in ("unk_token", "bos_token"):
        tid = getattr(tokenizer, f"{name}_id", None)
        if tid is not None and tid != eos:
            tokenizer.pad_token = getattr(tokenizer, name)
            return tid
    print("export: warning: pad == eos and no other special token; transformers' own pooling will skip a "
          "trailing eos (vLLM's does not)")
    return pad


def _effective_head(model: RewardModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W [k, h], b [k])`` of the eval-mode reward ``(W h + b - μ) / σ``."""
    w = model.head.weight.detach().double().clone()
    b = model.head.bias.detach().double().clone() if model.head.bias is not None else torch.zeros(w.shape[0])
    b = b.double()
    if model.output_std is not None:
        w, b = w / model.output_std, (b - model.output_mean) / model.output_std
    return w, b


def not_a_classifier(model: RewardModel) -> str | None:
    """None when ``model`` is a transformers ``*ForSequenceClassification`` in other clothes (a decoder, last-token
    pooling, a linear head: what :func:`to_classifier` converts and vLLM's pooling runner scores), else what it is."""
    if model.encoder or model.pooling != "last" or model.head_type != "linear":
        kind = "encoder" if model.encoder else "decoder"
        return f"a {kind} with pooling {model.pooling!r} and a {model.head_type!r} head"
    return None


def to_classifier(model: RewardModel, tokenizer) -> tuple[torch.nn.Module, torch.Tensor]:
    """``(classifier, residual)``: ``model`` (a decoder, last-token pooling, linear head) as a transformers
    ``*ForSequenceClassification`` whose logits are the eval-mode rewards minus ``residual`` ``[k]``, the part of the
    effective head bias no parameter of the classifier can hold (zeros unless the final norm has no bias). Sets
    ``pad_token_id`` in ``model``'s config and, when pad == eos, another pad token in ``tokenizer``
    (:func:`_pad_id_for_hf_pooling`): pass a copy of a tokenizer still in use."""
    from transformers import AutoModelForSequenceClassification

    if (what := not_a_classifier(model)) is not None:
        raise UserError(f"export --format hf: {what} has no transformers *ForSequenceClassification equivalent "
                        "(supported: decoders with last-token pooling and a linear head, and imported classifiers)")
    config = model.backbone.config
    config.num_labels = model.num_outputs
    config.pad_token_id = _pad_id_for_hf_pooling(tokenizer)
    classifier = AutoModelForSequenceClassification.from_config(config)
    result = classifier.base_model.load_state_dict(model.backbone.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"export: backbone does not fit {type(classifier).__name__} "
                        f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})")
    score = getattr(classifier, "score", None)
    if not isinstance(score, torch.nn.Linear):
        raise UserError(f"export: {type(classifier).__name__} has no linear 'score' head")
    w, b = _effective_head(model)
    score.weight.data.copy_(w)
    residual = torch.zeros_like(b)
    if score.bias is not None:
        score.bias.data.copy_(b)
    elif b.abs().max() > BIAS_ATOL:
        norm = _final_norm(classifier.base_model)
        if norm is not None and getattr(norm, "bias", None) is not None:
            delta = torch.linalg.pinv(w) @ b  # W (h + δ) = W h + b
            if not torch.allclose(w @ delta, b, atol=1e-6):
                raise UserError("export: the head bias cannot be folded into the final norm (k > hidden?)")
            norm.bias.data += delta.to(norm.bias.dtype)
        else:
            residual = b
    return classifier, residual.float()


def export_hf(path: str | os.PathLike, out: str | os.PathLike, drop_bias: bool = False) -> Path:
    """Write ``path`` (a rewardlab checkpoint or an imported RM) as a transformers classifier directory ``out``."""
    from rewardlab.io import check_output_dir
    from rewardlab.models.card import write_export_card

    out = check_output_dir(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"export: {out} exists and is not empty; choose a new directory")
    model, tokenizer, manifest = load_reward_model(path)
    model = model.float().eval()
    if model.head_type == "native":
        classifier = model.backbone
    else:
        classifier, residual = to_classifier(model, tokenizer)
        if residual.abs().max() > BIAS_ATOL and not drop_bias:
            raise UserError(f"export: the head has a bias ({residual.abs().max():.4g}) and the backbone's final norm "
                            "has none to fold it into; pass --drop-bias to export without it (every score shifts by "
                            "the same constant: pairwise preferences and accuracy are unchanged)")
    tmp = out.absolute().with_name(f".{out.name}.exporting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        classifier.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_export_card(tmp, path, manifest)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
