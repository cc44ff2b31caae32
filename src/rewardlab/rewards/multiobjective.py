"""Multi-objective rewards: ArmoRM (absolute-rating multi-objective RM + mixture-of-experts gating) and DPA.

ArmoRM (Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward Modeling and Mixture-of-Experts"):
attribute heads fitted by ridge regression on a frozen backbone's features, verbosity decorrelation, and a gate over
the attributes, ``R(x, y) = β · g(x)ᵀ r'(x, y)`` — the model and its formulas are :mod:`rewardlab.models.armo`'s, the
fit :mod:`rewardlab.train.multiobjective`'s; :class:`ArmoReward` is it as a Reward.

DPA (Wang et al. 2024, "Arithmetic Control of LLMs for Diverse User Preferences: Directional Preference
Alignment"): ``R_v(x, y) = ⟨v / ||v||, r(x, y)⟩`` with a user-chosen direction ``v`` over the attributes (e.g.
``(cos θ, sin θ)`` over helpfulness and verbosity); :func:`rotation_rankings` shows how rankings change with θ.

Shapes: ``n`` items, ``k`` attributes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.errors import UserError
from rewardlab.models.armo import ArmoRM, FeatureExtractor, GatingNetwork
from rewardlab.rewards.base import is_batch_invariant

# ------------------------------------------------------------------------------------------------ pure functions


def unit_direction(direction: Sequence[float] | torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(direction, dtype=torch.float32)
    norm = v.norm()
    if v.dim() != 1 or not torch.isfinite(norm) or norm == 0:
        raise ValueError(f"a direction must be a non-zero finite vector, got {direction}")
    return v / norm


def dpa_score(scores: torch.Tensor, direction: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """DPA: ``⟨v/||v||, r⟩`` for ``scores [n, k]`` → ``[n]``."""
    return scores.float() @ unit_direction(direction).to(scores.device)


def rotation_rankings(scores: torch.Tensor, a: int, b: int, angles_deg: Sequence[float]) -> list[list[int]]:
    """Rankings of ``m`` responses (``scores [m, k]``, one prompt) under ``v(θ) = cos θ·e_a + sin θ·e_b`` for each
    angle; each ranking lists response indices best first (ties keep index order)."""
    out = []
    for deg in angles_deg:
        v = torch.zeros(scores.shape[1])
        v[a], v[b] = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        s = dpa_score(scores, v).tolist()
        out.append(sorted(range(len(s)), key=lambda i: (-s[i], i)))
    return out


# ------------------------------------------------------------------------------------------------ rewards


class ArmoReward(ArmoRM):
    """ArmoRM as a :class:`~rewardlab.rewards.base.Reward`: ``score`` → ``[n]`` gated preference scores;
    ``attributes`` → raw attribute scores ``[n, k]``; ``inspect`` → everything (scores, weights, β)."""

    num_outputs = 1

    def __init__(self, extractor: FeatureExtractor, weight: torch.Tensor, bias: torch.Tensor, names: list[str],
                 gate: GatingNetwork, verbosity: str | None = None, decorrelation: torch.Tensor | None = None,
                 name: str = "armo"):
        super().__init__(extractor, weight, bias, names, gate, verbosity, decorrelation)
        self.name = name
        self.attribute_names = list(names)  # attributes(): the raw ridge-head scores (rewards.base)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None, **kwargs) -> ArmoReward:
        """An ArmoRM checkpoint (:data:`rewardlab.models.formats.ARMO`)."""
        from rewardlab.models.formats import ARMO

        m = ARMO.load(path, device=device or "cpu").model
        kwargs.setdefault("name", os.path.basename(os.path.normpath(str(path))))
        return cls(m.extractor, m.weight, m.bias, m.names, m.gate, m.verbosity, m.decorrelation, **kwargs)


class DirectionalReward:
    """DPA: ``⟨v/||v||, r(x, y)⟩`` over the attribute scores of ``base`` (an :class:`ArmoReward`'s raw attributes, or
    any Reward returning ``[n, k]``). ``direction``: k weights, or ``{attribute: weight}`` (others 0)."""

    num_outputs = 1

    @property
    def batch_invariant(self) -> bool:
        return is_batch_invariant(self.base)

    def __init__(self, base: Any, direction: Sequence[float] | dict[str, float], names: Sequence[str] | None = None,
                 name: str = "dpa"):
        self.base, self.name = base, name
        self.names = list(names or getattr(base, "names", None) or [])
        if isinstance(direction, dict):
            unknown = set(direction) - set(self.names)
            if unknown or not self.names:
                raise UserError(f"direction names {sorted(unknown) or list(direction)} not among the attributes "
                                f"{self.names}")
            direction = [float(direction.get(n, 0.0)) for n in self.names]
        try:
            self.direction = unit_direction(direction)
        except ValueError as e:
            raise UserError(str(e)) from None
        if self.names and len(self.direction) != len(self.names):
            raise UserError(f"direction has {len(self.direction)} weights for {len(self.names)} attributes")
        self.attribute_names = list(self.names)  # attributes(): the base's per-attribute scores (rewards.base)

    def attributes(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        fn = getattr(self.base, "attributes", None)
        s = fn(prompts, responses) if callable(fn) else self.base.score(prompts, responses)
        s = s.float()
        if s.dim() != 2 or s.shape[1] != len(self.direction):
            raise UserError(f"{self.name}: base reward gives shape {tuple(s.shape)}, expected [n, "
                            f"{len(self.direction)}]")
        return s

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if not prompts:
            return torch.zeros(0)
        return dpa_score(self.attributes(prompts, responses), self.direction)


def parse_direction(text: str) -> list[float] | dict[str, float]:
    """``"helpfulness=0.8,verbosity=-0.6"`` → dict; ``"0.8,-0.6"`` → list."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise UserError(f"direction {text!r}: expected name=weight,... or w1,w2,...") from None


def multiobjective_from_spec(spec: str, device: str | None = None):
    """``armo:DIR`` → :class:`ArmoReward`; ``dpa:DIR:DIRECTION`` → :class:`DirectionalReward` over the raw
    attributes of an ArmoRM checkpoint (or the outputs of a k-output reward-model checkpoint)."""
    kind, _, rest = spec.partition(":")
    if kind == "armo":
        if not rest:
            raise UserError(f"reward spec {spec!r}: expected armo:DIR")
        return ArmoReward.from_pretrained(rest, device=device)
    path, _, direction = rest.rpartition(":")
    if not path or not direction:
        raise UserError(f"reward spec {spec!r}: expected dpa:DIR:DIRECTION (name=w,... or w1,w2,...)")
    from rewardlab.models.formats import ARMO

    if ARMO.detect(Path(path)):
        base = ArmoReward.from_pretrained(path, device=device)
        names = base.names
    else:
        from rewardlab.rewards.model import ModelReward

        if not Path(path).is_dir():
            raise UserError(f"reward spec {spec!r}: {path} is not a checkpoint directory")
        base = ModelReward.from_pretrained(path, device=device)
        names = base.manifest.get("attributes") or [f"out{i}" for i in range(base.num_outputs)]
    return DirectionalReward(base, parse_direction(direction), names, name=f"dpa:{Path(path).name}:{direction}")
