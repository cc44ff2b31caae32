"""Reward scoring on vLLM's pooling runner: :class:`VLLMScorer`, the engine behind ``vllm:DIR`` reward specs
(:class:`rewardlab.rewards.vllm.VLLMReward`).

A decoder reward model with last-token pooling and a linear head is a transformers
``*ForSequenceClassification`` as far as vLLM is concerned. The scorer starts ``LLM(runner="pooling")`` on

- the directory itself when it is one already (an imported hub RM: its own weights, nothing copied), or
- a temporary copy written by :func:`rewardlab.models.export.to_classifier` (a rewardlab checkpoint: the head's
  weight as ``score``, its bias and any output normalization folded in; the part of the bias no parameter can hold
  — a Llama-style RMSNorm has no bias — is added back here),

and asks for the raw class logits (``classify`` with ``use_activation=False``) of the token ids rewardlab renders
(:class:`~rewardlab.data.tokenize.PairEncoder`: vLLM's tokenizer is never used), so a reward is
``logits + residual``, then ``(r − mean) / std`` when the model normalizes its outputs and the logits do not
already. Pooling: vLLM reads the last token; transformers (and :class:`~rewardlab.models.reward_model.RewardModel`)
read the last token that is not ``skip_token_id`` (pad == eos classifiers): trailing skip tokens are cut before
scoring, which is exact because a causal model's earlier hidden states do not see later tokens. An empty sequence is
one pad token (:func:`rewardlab.models.packing.nonempty`), as in the torch path.

Encoders, mean/CLS pooling and MLP heads have no vLLM classifier: refused with the reason. Runtime (in-process
engine, memory, CPU options): :mod:`rewardlab.models.vllm_runtime`.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from rewardlab.errors import UserError
from rewardlab.models import vllm_runtime as runtime
from rewardlab.models.export import not_a_classifier, to_classifier
from rewardlab.models.generation import position_limit
from rewardlab.models.packing import nonempty
from rewardlab.models.reward_model import RewardModel


def trim_skipped(ids: Sequence[int], skip: int | None) -> list[int]:
    """``ids`` without its trailing ``skip`` tokens (at least its first token): the read position of transformers'
    decoder classifiers (the last token that is not pad) becomes the last position, the one vLLM reads."""
    ids = list(map(int, ids))
    end = len(ids)
    while skip is not None and end > 1 and ids[end - 1] == skip:
        end -= 1
    return ids[:end]


class VLLMScorer:
    """``score_ids(seqs)`` → ``[n]`` (one output) or ``[n, k]``, as :meth:`PooledScorer.score_ids
    <rewardlab.models.scorer.PooledScorer.score_ids>` computes it, on a vLLM engine holding ``model``.

    ``source``: a transformers classifier directory of exactly these weights (vLLM loads it as is), else None (a
    converted copy is written to a temporary directory). ``device``: where vLLM runs (its build decides: cuda or
    cpu). ``dtype``: vLLM's compute dtype (default the model's). ``max_model_len``: ``max_length`` capped to the
    model's positions (vLLM refuses longer inputs). ``model`` can be freed after construction (``model.to("meta")``):
    only its configuration is read afterwards."""

    def __init__(self, model: RewardModel, tokenizer, max_length: int, device: str, source: Path | None = None,
                 dtype: torch.dtype | None = None):
        if (what := not_a_classifier(model)) is not None:
            raise UserError("vllm: only decoder reward models with last-token pooling and a linear head run on vLLM "
                            f"(this one: {what}); score it without the vllm: prefix")
        runtime.configure_env()
        from vllm import LLM

        runtime.check_platform(device, "vllm:")
        self.num_outputs = model.num_outputs
        self.skip = model.skip_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.residual = torch.zeros(model.num_outputs)
        # a converted copy has the normalization folded into its head; a directory loaded as is does not
        normalized = source is not None and model.output_std is not None
        self.affine = (float(model.output_mean), float(model.output_std)) if normalized else None
        converted = None
        if source is None:
            tokenizer = copy.deepcopy(tokenizer)
            classifier, self.residual = to_classifier(model, tokenizer)
            converted = tempfile.mkdtemp(prefix="rewardlab-vllm-rm-")
            classifier.save_pretrained(converted, safe_serialization=True)
            tokenizer.save_pretrained(converted)  # vLLM's pooling runner wants one; token ids are passed, never text
            del classifier
        limit = position_limit(model.backbone)
        self.max_model_len = min(max_length, limit) if limit else max_length  # vLLM refuses longer inputs
        try:
            self.llm = runtime.started(LLM(
                model=str(source or converted), runner="pooling", seed=0, max_model_len=self.max_model_len,
                dtype=runtime.dtype_name(dtype or next(model.parameters()).dtype),
                **runtime.engine_options(device, self.max_model_len)))
        finally:  # the engine holds what it read: the copy goes now, not at exit (a CLI run never calls close)
            if converted is not None:
                shutil.rmtree(converted, ignore_errors=True)

    @torch.no_grad()
    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Rewards of token-id sequences, in input order, on CPU, float32."""
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        out = torch.empty((len(seqs), self.num_outputs), dtype=torch.float32)
        if seqs:
            prompts = [TokensPrompt(prompt_token_ids=trim_skipped(s, self.skip)) for s in nonempty(seqs, self.pad_id)]
            results = self.llm.classify(prompts, pooling_params=PoolingParams(use_activation=False), use_tqdm=False)
            out = torch.tensor([r.outputs.probs for r in results], dtype=torch.float32) + self.residual
            if self.affine is not None:
                out = (out - self.affine[0]) / self.affine[1]
        return out.squeeze(-1) if self.num_outputs == 1 else out

    def close(self) -> None:
        """Shut the engine down (:func:`rewardlab.models.vllm_runtime.shutdown`)."""
        runtime.shutdown(self.__dict__.pop("llm", None))
