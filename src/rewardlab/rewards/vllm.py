"""``vllm:DIR`` — a decoder reward model scored on vLLM's pooling runner (:class:`VLLMReward`).

Everything but the forward pass is :class:`~rewardlab.rewards.model.ModelReward`'s: the same directory formats
(a rewardlab checkpoint, a transformers classifier, an OpenRLHF or PEFT reward model, a hub id), the same rendering
and token ids (chat template, truncation to ``max_length``), the same manifest (normalization, attribute names, the
scalar of a k-class classifier). The forward pass is :class:`~rewardlab.models.vllm_scorer.VLLMScorer`'s, so the
scores equal the torch path's to float rounding (fp32; tests/rewards/test_vllm_reward.py, ``make test-vllm``).
Worth it where vLLM's kernels beat torch's eager forward: large decoder RMs, on a GPU and on a CPU alike (README,
Benchmarks). Usable wherever a reward spec is: ``score``, ``eval``, ``teachers``, ``serve``, the optimize loops,
ensembles.

Memory: the directory is loaded once on the CPU (to render and, for a rewardlab checkpoint, to write vLLM's copy),
then freed; vLLM holds the weights. A ``vllm:`` reward runs beside ``--engine vllm`` sampling in one process (best-of-n
with both: tests/rewards/test_vllm_reward.py); an engine closed while another runs keeps its memory until the last
one closes (:func:`rewardlab.models.vllm_runtime.shutdown`). The input cap is the model's positions when they are
fewer than ``max_length`` (vLLM refuses longer inputs; said on stderr).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from rewardlab.errors import UserError
from rewardlab.rewards.model import ModelReward

SCORABLE_FORMATS = ("rewardlab", "transformers", "openrlhf", "peft")


class VLLMReward(ModelReward):
    """A :class:`ModelReward` whose :meth:`score_ids` runs on vLLM; :meth:`close` shuts the engine down."""

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None, dtype: str | None = None,
                        chat_template: str | None = None, attn_implementation: str | None = None,
                        **kwargs) -> VLLMReward:
        from rewardlab.models.device import resolve_device, resolve_dtype
        from rewardlab.models.engines import require_vllm
        from rewardlab.models.formats import detect
        from rewardlab.models.vllm_scorer import VLLMScorer

        require_vllm(f"vllm:{path}")
        fmt = detect(path)
        if fmt is None or fmt.name not in SCORABLE_FORMATS:
            raise UserError(f"vllm:{path}: a {fmt.name if fmt else 'non-reward-model'} directory; vllm: scores "
                            "pooled reward models (a rewardlab checkpoint, a transformers classifier, an OpenRLHF "
                            "or PEFT reward model)")
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        reward = super().from_pretrained(path, device="cpu", dtype=dtype, chat_template=chat_template,
                                         attn_implementation=attn_implementation, **kwargs)
        source = Path(path) if fmt.name == "transformers" else None  # vLLM reads a transformers classifier as is
        reward.vllm = VLLMScorer(reward.model, reward.tokenizer, reward.max_length, device.type, source, dtype)
        reward.model.to("meta")  # vLLM holds the weights now
        if reward.vllm.max_model_len < reward.max_length:  # the model has fewer positions: truncate as vLLM must
            print(f"vllm:{path}: max_length {reward.max_length} capped to the model's {reward.vllm.max_model_len} "
                  "positions", file=sys.stderr)
            reward.max_length = reward.encoder.max_length = reward.vllm.max_model_len
        return reward

    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        return self.vllm.score_ids(seqs)

    def close(self) -> None:
        self.vllm.close()


def vllm_reward_from_spec(spec: str, device: str | None = None, dtype: str | None = None,
                          chat_template: str | None = None, attn_implementation: str | None = None) -> VLLMReward:
    """``vllm:DIR`` (a model directory or a hub id ``org/name[@revision]``) → :class:`VLLMReward`."""
    from rewardlab.hub import local_model_path

    target = spec.removeprefix("vllm:")
    if not target:
        raise UserError(f"reward spec {spec!r}: expected vllm:DIR (a reward-model directory or hub id)")
    from rewardlab.models.engines import require_vllm

    require_vllm(spec)  # before a hub download
    path = Path(local_model_path(target))
    if not path.is_dir():
        raise UserError(f"reward spec {spec!r}: {path} is not a directory")
    return VLLMReward.from_pretrained(path, device=device, dtype=dtype, chat_template=chat_template,
                                      attn_implementation=attn_implementation)
