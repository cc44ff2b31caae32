"""PRMReward: a process reward model behind the :class:`~rewardlab.rewards.base.Reward` interface.

A response is split into steps at the model's separator (:func:`rewardlab.data.stepwise.split_steps`), each step is
scored ``p_j = σ(logit_j)`` at its last token, and the step rewards are aggregated into one scalar per response
(:func:`aggregate_steps`) — what best-of-n and outcome-level RL consume. :meth:`PRMReward.step_scores` gives the
per-step rewards themselves (dense rewards, see :mod:`rewardlab.rewards.dense`).

Aggregations of step probabilities ``p_1..p_n`` and who uses them:

- ``product`` ``Π_j p_j`` — the probability that every step is correct, if steps are independent: Lightman et al.
  2023, "Let's Verify Step by Step" (their PRM's solution score).
- ``min`` ``min_j p_j`` — the weakest step: Wang et al. 2023 (ACL 2024), "Math-Shepherd" (a solution's
  verification score is the minimum of its step scores).
- ``last`` ``p_n`` — the prediction at the final step, which for PRMs trained on Monte Carlo rollout labels is a
  value estimate of the whole solution: Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally", report it as
  the aggregation that worked best for their PRM.
- ``mean`` ``(1/n) Σ_j p_j`` — a smoother baseline used in aggregation comparisons; it lets many good steps outweigh
  one wrong step, which is why error-sensitive aggregations (min, product) are usually preferred.

``product`` shrinks with the number of steps (a long correct solution scores below a short one); ``min`` and
``last`` do not. Steps dropped by truncation (see :mod:`rewardlab.data.step_encode`) have no score (NaN in
:meth:`PRMReward.step_scores`) and are left out of the aggregate; they are counted in ``self.encoder.stats``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from rewardlab.data.batching import length_sorted_batches, pad_batch
from rewardlab.data.records import Prompt, Response
from rewardlab.data.step_encode import StepEncoder, StepFormat
from rewardlab.data.stepwise import split_steps
from rewardlab.errors import UserError
from rewardlab.models.prm import ProcessRewardModel, gather_steps

AGGREGATIONS = ("min", "last", "product", "mean")


def aggregate_steps(probs: Sequence[float], method: str = "min") -> float:
    """One score from step rewards ``probs`` (NaN = unscored, skipped); see the module docstring for the methods.
    NaN when no step is scored."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose from {', '.join(AGGREGATIONS)}")
    p = [float(x) for x in probs if not math.isnan(x)]
    if not p:
        return math.nan
    if method == "min":
        return min(p)
    if method == "last":
        return p[-1]
    if method == "product":
        return math.prod(p)
    return sum(p) / len(p)


def response_steps(response: Response, separator: str) -> list[str]:
    """The steps of a response: its text (a conversation: its assistant turns' contents joined by the separator)
    split at ``separator``."""
    if not isinstance(response, str):
        response = separator.join(m["content"] for m in response if m.get("role") == "assistant")
    return split_steps(response, separator)


class PRMReward:
    """A :class:`ProcessRewardModel` as a Reward: ``score`` → ``[n]`` aggregated step rewards, ``step_scores`` →
    per-step rewards ``σ(logit)``. ``aggregate`` is one of :data:`AGGREGATIONS`; ``step_format`` overrides the
    manifest's (an imported model gets TRL's, separator ``"\\n"``); ``max_length`` the manifest's budget."""

    num_outputs = 1

    def __init__(self, model: ProcessRewardModel, tokenizer, manifest: dict[str, Any] | None = None,
                 aggregate: str = "min", batch_size: int = 16, max_length: int | None = None,
                 device: str | torch.device | None = None, name: str = "prm", step_format: StepFormat | None = None):
        if aggregate not in AGGREGATIONS:
            raise UserError(f"PRM aggregation {aggregate!r}: choose from {', '.join(AGGREGATIONS)}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.manifest = manifest or {}
        self.aggregate = aggregate
        self.batch_size = batch_size
        self.name = name
        self.format = step_format or StepFormat.from_dict(self.manifest.get("steps"))
        self.max_length = int(max_length or self.manifest.get("max_length") or 1024)
        rendering = getattr(model, "rendering", None)
        self.encoder = StepEncoder(tokenizer, self.max_length, self.format, decoder=not model.encoder,
                                   chat_template=rendering.chat_template if rendering is not None else None)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, aggregate: str = "min", device: str | None = None,
                        dtype: str | None = None, **kwargs) -> PRMReward:
        """A rewardlab PRM checkpoint or a transformers ``*ForTokenClassification`` directory
        (:data:`rewardlab.models.formats.PRM`)."""
        from rewardlab.models.device import resolve_device, resolve_dtype
        from rewardlab.models.formats import PRM

        device = resolve_device(device)
        model, tokenizer, manifest = PRM.load(path, device=device, dtype=resolve_dtype(dtype, device))
        kwargs.setdefault("name", os.path.basename(os.path.normpath(str(path))))
        return cls(model, tokenizer, manifest, aggregate=aggregate, **kwargs)

    @property
    def separator(self) -> str:
        return self.format.separator

    @torch.no_grad()
    def score_steps(self, prompts: Sequence[Prompt], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        """Step rewards ``σ(logit)`` for given steps (ProcessBench rows); NaN for steps dropped by truncation."""
        if len(prompts) != len(steps):
            raise ValueError(f"{len(prompts)} prompts but {len(steps)} step lists")
        encoded = [self.encoder.encode(p, list(s)) for p, s in zip(prompts, steps)]
        out: list[list[float]] = [[] for _ in encoded]
        for batch in length_sorted_batches([len(e.ids) for e in encoded], self.batch_size):
            ids, mask = pad_batch([encoded[i].ids for i in batch], self.pad_id)
            logits = self.model(ids.to(self.device), mask.to(self.device))
            for i, lg in zip(batch, gather_steps(logits, [encoded[i].ends for i in batch])):
                probs = torch.sigmoid(lg).cpu().tolist()
                out[i] = probs + [math.nan] * (encoded[i].n_steps - len(probs))
        return out

    def step_scores(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> list[list[float]]:
        """Per-step rewards of responses split at the separator (:func:`response_steps`): dense rewards."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return self.score_steps(prompts, [response_steps(r, self.separator) for r in responses])

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """``[n]``: the step rewards of each response aggregated with ``self.aggregate``."""
        per_step = self.step_scores(prompts, responses)
        return torch.tensor([aggregate_steps(s, self.aggregate) for s in per_step], dtype=torch.float32)


def prm_from_spec(spec: str, device: str | None = None, dtype: str | None = None) -> PRMReward:
    """``prm:DIR[:AGGREGATION]`` (default ``min``), or a bare PRM directory."""
    body = spec[len("prm:"):] if spec.startswith("prm:") else spec
    path, aggregate = body, "min"
    head, _, tail = body.rpartition(":")
    if head and tail in AGGREGATIONS:
        path, aggregate = head, tail
    elif head and not os.path.isdir(body):
        raise UserError(f"reward spec {spec!r}: unknown aggregation {tail!r}; expected prm:DIR[:"
                        f"{'|'.join(AGGREGATIONS)}]")
    if not os.path.isdir(path):
        raise UserError(f"reward spec {spec!r}: {path} is not a directory")
    return PRMReward.from_pretrained(path, aggregate=aggregate, device=device, dtype=dtype)
