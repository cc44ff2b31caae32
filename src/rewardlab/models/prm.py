"""Process reward model (PRM) = backbone + a per-token head, read at the last token of each step.

``ProcessRewardModel(input_ids, attention_mask)`` returns one **step logit per token**, ``[b, t]``: the log-odds
that the step ending at that token is correct; a step's reward is ``σ(logit)`` read at the positions
:class:`~rewardlab.data.step_encode.StepEncoder` reports (last token of step + separator, TRL's convention).

Heads:

- ``linear`` (rewardlab's own PRMs): ``nn.Linear(hidden, 1)`` on every hidden state; trained with BCE on the step
  labels (:mod:`rewardlab.train.prm`).
- ``native``: a whole transformers ``*ForTokenClassification`` model (TRL ``PRMTrainer`` outputs are
  ``AutoModelForTokenClassification`` with ``num_labels=2``), its logits used as they are. With ``num_labels=1`` the
  logit is the step logit; with ``num_labels=2`` the step logit is ``logit[1] − logit[0]``, so
  ``σ(logit[1] − logit[0]) = softmax(logits)[1]`` is exactly the model's P(label 1) = P(correct) — TRL maps
  ``True`` → 1, and ProcessBench's TRL script reads ``argmax == 0`` as a wrong step (the same as ``σ < 0.5``).
  BCE on this logit difference equals TRL's 2-class cross-entropy, so an imported PRM fine-tunes with the same loss.

The backbone runs as in :class:`~rewardlab.models.reward_model.RewardModel` (this class extends it): decoders get
mask-derived position ids (left-padded batches score like unpadded ones), encoders need right padding (what
:func:`~rewardlab.data.batching.pad_batch` does by default; left-padded encoder input is refused, since realigning
it would move the step positions).

Import (:func:`load_prm`): a rewardlab PRM checkpoint (``rewardlab.json`` with ``"kind": "prm"``) or a transformers
``*ForTokenClassification`` directory, safetensors only; ``num_labels`` must be 1 or 2. Architectures that are not
token classifiers (e.g. remote-code PRMs such as Qwen2.5-Math-PRM) are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.step_encode import StepFormat
from rewardlab.errors import UserError
from rewardlab.models.reward_model import RewardModel

KIND = "prm"


class ProcessRewardModel(RewardModel):
    """Per-token step logits ``[b, t]`` (see the module docstring). ``num_labels`` is 1 or 2."""

    def __init__(self, backbone: torch.nn.Module, num_labels: int = 1, head: str = "linear", head_bias: bool = True):
        if num_labels not in (1, 2):
            raise ValueError(f"a PRM head has 1 or 2 labels, got {num_labels}")
        if head not in ("linear", "native"):
            raise ValueError(f"a PRM head is 'linear' or 'native', got {head!r}")
        super().__init__(backbone, num_outputs=num_labels, pooling="last", head=head, head_bias=head_bias)
        self.num_labels = num_labels

    def token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's raw outputs per token, ``[b, t, num_labels]`` (float32)."""
        if self.encoder:
            mask = attention_mask.bool()
            if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
                raise ValueError("encoder PRMs need right-padded batches (the step positions index the input)")
        out, _ = self._backbone(input_ids, attention_mask)
        if self.head is None:
            return out.logits.float()
        return self.head(out.last_hidden_state.to(self.head_weight_dtype)).float()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Step logit per token, ``[b, t]``: ``logit`` (1 label) or ``logit[1] − logit[0]`` (2 labels)."""
        logits = self.token_logits(input_ids, attention_mask)
        return logits[..., 0] if self.num_labels == 1 else logits[..., 1] - logits[..., 0]

    def spec(self) -> dict:
        return {"kind": KIND, "num_labels": self.num_labels, "head": self.head_type, "head_bias": self.head_bias}


def gather_steps(step_logits: torch.Tensor, ends: list[list[int]]) -> list[torch.Tensor]:
    """Row ``i``'s step logits at positions ``ends[i]`` (``[b, t]`` → a list of ``[n_i]``)."""
    return [step_logits[i, torch.as_tensor(e, dtype=torch.long, device=step_logits.device)]
            for i, e in enumerate(ends)]


def is_token_classifier(path: str | os.PathLike) -> bool:
    """A transformers ``*ForTokenClassification`` directory (without a rewardlab manifest)."""
    p = Path(path)
    if not (p / "config.json").is_file() or (p / "rewardlab.json").exists():
        return False
    try:
        archs = json.loads((p / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(str(a).endswith("ForTokenClassification") for a in archs)


def is_prm_dir(path: str | os.PathLike) -> bool:
    """A rewardlab PRM checkpoint or a transformers token-classification directory."""
    p = Path(path)
    manifest = p / "rewardlab.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text()).get("kind") == KIND
        except (OSError, ValueError):
            return False
    return is_token_classifier(p)


def _load_token_classifier(p: Path, dtype: torch.dtype, attn: str | None) -> ProcessRewardModel:
    from transformers import AutoModelForTokenClassification

    from rewardlab.models.hf_import import _no_progress_bar, _require_safetensors

    _require_safetensors(p)
    kwargs = {"attn_implementation": attn} if attn else {}
    with _no_progress_bar():
        model, info = AutoModelForTokenClassification.from_pretrained(
            p, use_safetensors=True, dtype=dtype, output_loading_info=True, **kwargs)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise UserError(f"{p}: weights missing from the checkpoint ({', '.join(missing[:3])}); refusing to score "
                        "with randomly initialised ones")
    k = int(model.config.num_labels)
    if k not in (1, 2):
        raise UserError(f"{p}: a token classifier with {k} labels; a PRM has 1 (a logit) or 2 (wrong, correct)")
    return ProcessRewardModel(model, num_labels=k, head="native")


def load_prm(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
             attn_implementation: str | None = None) -> tuple[ProcessRewardModel, Any, dict[str, Any]]:
    """``(model, tokenizer, manifest)`` of a rewardlab PRM checkpoint or a transformers token-classification
    directory (see the module docstring). ``manifest["steps"]`` is the :class:`StepFormat`, ``manifest["max_length"]``
    the token budget; an imported model gets TRL's defaults (separator ``"\\n"``) and its position limit."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

    from rewardlab.data.tokenize import Rendering
    from rewardlab.models.backbone import _tokenizer
    from rewardlab.models.checkpoint import MANIFEST, WEIGHTS, check_loaded
    from rewardlab.models.hf_import import imported_max_length

    p = Path(path)
    if not is_prm_dir(p):
        raise UserError(f"{path}: not a process reward model (neither a rewardlab PRM checkpoint nor a transformers "
                        "*ForTokenClassification directory)")
    dtype = dtype or torch.float32
    tokenizer = _tokenizer(p)
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
    return model, tokenizer, manifest
