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

Loading and detecting PRM directories (a rewardlab PRM checkpoint or a transformers ``*ForTokenClassification``
directory) is the format seam's: :mod:`rewardlab.models.formats.prm`.
"""

from __future__ import annotations

import torch

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
