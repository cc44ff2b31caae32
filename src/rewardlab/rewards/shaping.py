"""Reward shaping applied to any :class:`~rewardlab.rewards.base.Reward`.

* Normalization and clipping (Zheng et al. 2023, "Secrets of RLHF in Large Language Models Part I: PPO"):
  ``r' = clip((r − μ) / σ, −c, c)`` with (μ, σ) fixed (given, or measured once on a reference set with
  :meth:`NormalizedReward.calibrate`) or running (updated with every scored batch).
* Preference As Reward, PAR (Fu et al. 2025, "Reward Shaping to Mitigate Reward Hacking in RLHF"):
  ``r'(x, y) = (1/M) Σ_m σ(r(x, y) − r(x, y_ref^m))`` with ``y_ref^m`` M responses of the reference policy to the
  same prompt. Bounded in (0, 1) and flat far from the reference, which removes the incentive to push the proxy
  to extremes.

Wrappers that need statistics of a reference policy expose ``calibrate(prompts, responses)``; the optimize loops
call it once with samples of the initial policy (see :func:`calibrate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardlab.data.records import Prompt, Response, prompt_key
from rewardlab.rewards.base import Reward, is_batch_invariant


def calibrate(reward: Reward, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
    """Call ``reward.calibrate(prompts, responses)`` if the reward has one (no-op for plain rewards)."""
    fn = getattr(reward, "calibrate", None)
    if callable(fn):
        fn(prompts, responses)


def normalize_clip(r: torch.Tensor, mean: torch.Tensor | float, std: torch.Tensor | float,
                   clip: float | None = None, eps: float = 1e-8) -> torch.Tensor:
    """``clip((r − mean) / (std + eps), −clip, clip)``; ``clip=None`` does not clip. Broadcasts over [n, k]."""
    z = (r - mean) / (std + eps)
    return z if clip is None else z.clamp(-clip, clip)


def par_shape(r: torch.Tensor, r_ref: torch.Tensor) -> torch.Tensor:
    """PAR: ``(1/M) Σ_m σ(r − r_ref[:, m])``; ``r`` [n], ``r_ref`` [n, M] → [n] in (0, 1)."""
    return torch.sigmoid(r[:, None] - r_ref).mean(1)


class RunningMoments:
    """Running mean / variance over all values seen (Chan et al. parallel update; exact, not an EMA)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = torch.zeros((), dtype=torch.float64)
        self.m2 = torch.zeros((), dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        """Fold in a batch ``x`` ([n] or [n, k]; statistics per column for [n, k])."""
        x = x.detach().double()
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_m2 = ((x - b_mean) ** 2).sum(0)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + b_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> torch.Tensor:
        """Population standard deviation of everything seen so far."""
        return (self.m2 / max(self.count, 1)).sqrt()


class NormalizedReward:
    """``clip((r − μ)/σ, ±clip)`` around a base reward.

    ``mode="fixed"``: (μ, σ) given, or measured by :meth:`calibrate` on a reference set (scoring before that
    raises). ``mode="running"``: every ``score`` call first folds its raw rewards into running moments, then
    normalizes with them — so, by design, the output depends on what was scored before.
    """

    def __init__(self, base: Reward, mode: str = "fixed", mean: float | None = None, std: float | None = None,
                 clip: float | None = 5.0, eps: float = 1e-8):
        if mode not in ("fixed", "running"):
            raise ValueError(f"mode must be 'fixed' or 'running', got {mode!r}")
        self.base, self.mode, self.clip, self.eps = base, mode, clip, eps
        self.mean = None if mean is None else torch.tensor(float(mean))
        self.std = None if std is None else torch.tensor(float(std))
        self.moments = RunningMoments()

    @property
    def batch_invariant(self) -> bool:  # running moments fold in every call: the output depends on the batch
        return self.mode != "running" and is_batch_invariant(self.base)

    def calibrate(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
        """Fixed mode: set (μ, σ) from the base rewards of a reference set. Running mode: seed the moments."""
        calibrate(self.base, prompts, responses)
        r = self.base.score(prompts, responses).detach().float()
        if self.mode == "fixed":
            self.mean, self.std = r.mean(0), r.std(0, unbiased=False)
        else:
            self.moments.update(r)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        r = self.base.score(prompts, responses).float()
        if self.mode == "running":
            self.moments.update(r)
            return normalize_clip(r, self.moments.mean.float(), self.moments.std.float(), self.clip, self.eps)
        if self.mean is None or self.std is None:
            raise RuntimeError("NormalizedReward(mode='fixed') needs mean/std or a calibrate() call first")
        return normalize_clip(r, self.mean, self.std, self.clip, self.eps)


class PARReward:
    """Preference As Reward: ``(1/M) Σ_m σ(r(x, y) − r(x, y_ref^m))`` around a base reward.

    Reference responses come from ``references`` (prompt → responses of the reference policy) or from
    :meth:`calibrate` (samples of the initial policy; every response of a prompt becomes a reference, use
    ``max_refs`` to keep the first M). Their base rewards are scored once and cached, so the base must be
    stationary (raw or fixed-normalized, not ``mode="running"``). Scoring a prompt without references raises
    ``KeyError``.
    """

    def __init__(self, base: Reward, references: dict[str, Sequence[Response]] | None = None,
                 max_refs: int | None = 1):
        self.base, self.max_refs = base, max_refs
        self.ref_rewards: dict[str, torch.Tensor] = {}
        if references:
            prompts = list(references)
            self._set_refs(prompts, [list(references[p]) for p in prompts])

    @property
    def batch_invariant(self) -> bool:
        return is_batch_invariant(self.base)

    def _set_refs(self, prompts: Sequence[Prompt], refs: Sequence[Sequence[Response]]) -> None:
        refs = [list(r)[: self.max_refs] if self.max_refs else list(r) for r in refs]
        flat_p = [p for p, rs in zip(prompts, refs, strict=True) for _ in rs]
        flat_r = [y for rs in refs for y in rs]
        scores = self.base.score(flat_p, flat_r).detach().float()
        if scores.dim() != 1:
            raise ValueError("PARReward needs a scalar base reward (scores of shape [n])")
        start = 0
        for p, rs in zip(prompts, refs, strict=True):
            self.ref_rewards[prompt_key(p)] = scores[start : start + len(rs)]
            start += len(rs)

    def calibrate(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
        """Use these (prompt, response) samples of the reference policy as the references of their prompts."""
        calibrate(self.base, prompts, responses)
        grouped: dict[str, tuple[Prompt, list[Response]]] = {}
        for p, y in zip(prompts, responses, strict=True):
            grouped.setdefault(prompt_key(p), (p, []))[1].append(y)
        self._set_refs([g[0] for g in grouped.values()], [g[1] for g in grouped.values()])

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        r = self.base.score(prompts, responses).float()
        missing = [p for p in prompts if prompt_key(p) not in self.ref_rewards]
        if missing:
            raise KeyError(f"PARReward has no reference responses for prompt {missing[0]!r}; call calibrate()")
        out = torch.empty_like(r)
        for i, p in enumerate(prompts):
            out[i] = par_shape(r[i : i + 1], self.ref_rewards[prompt_key(p)][None, :])[0]
        return out
