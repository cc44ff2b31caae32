"""PPO-C's calibrated reward (Leng et al. 2024, "Taming Overconfidence in LLMs: Reward Calibration in RLHF",
arXiv 2410.09724): a reward wrapper that rewards stated confidence when the answer is better than usual and
penalizes it when the answer is worse.

For a batch of responses y_i with verbalized confidence c_i ∈ [0, 10] (``Confidence: N`` in the text,
:func:`rewardlab.data.confidence.read_confidence`), s_i = c_i / 10:

    r_i     = r(x_i, y_i without its confidence statement)              the base reward of the answer alone
    Δr_t    = α · (1/B) Σ_i r_i + (1 − α) · Δr_{t−1}                     exponential average of past batch means
    r̂_i     = r_i + w · (r_i − Δr_t) · (s_i − 0.5)

So a response better than the running average (r_i > Δr_t) gains reward by stating high confidence and loses by
stating low; a worse one the other way round; s_i = 0.5 changes nothing. Defaults w = 2, α = 0.1 are the authors'
PPO-C runs (their released training scripts). Δr_0, first found of: ``mean=M``; the base checkpoint's reference mean
(``normalization.mean`` of its manifest, ``rewardlab calibrate`` / ``train --eval``: the authors start from their
reward model's stored mean); the mean base reward of the initial policy's samples, when the optimize loop calls
:meth:`PPOCReward.calibrate`; the first scored batch's mean. Δr_t is updated with each ``score`` call *before* the
batch is adjusted, so the reward of an item depends on what was scored before it and on its batch: the wrapper declares
``batch_invariant = False`` (the server scores it one request at a time; ``rewardlab score`` folds in each
``--batch-size`` batch of items, the optimize loops each step's rollout — as the paper each PPO batch — and also
each gold-tracking evaluation's samples). After each call ``batch_metrics`` holds Δr_t, the share of the batch
without a statement and the mean stated confidence (logged by the optimize loops when they read it).

**No confidence statement**: s_i = 0.5, so r̂_i = r_i — the unadjusted base reward (as the authors' code, which
reads a missing score as 5). ``missing`` counts such responses over the wrapper's life; the base reward still folds
into Δr_t. Values outside [0, 10] are clipped.

Spec: ``ppoc:[w=W,alpha=A,mean=M:]SPEC`` with SPEC any reward spec (:mod:`rewardlab.rewards.registry`), e.g.
``ppoc:runs/rm`` or ``ppoc:w=1,alpha=0.05:python:my_rewards:fn``. Not implemented: the authors' older
"threshold" variant (r ± w·|r|·(s − 0.5) by the sign of r − Δr_t) and their clamping of r to [−10, 10].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rewardlab.data.confidence import read_confidence, strip_confidence
from rewardlab.data.records import Prompt, Response
from rewardlab.errors import UserError
from rewardlab.rewards.base import Reward
from rewardlab.rewards.shaping import calibrate

OPTIONS = {"w": 2.0, "alpha": 0.1, "mean": None}


def calibrated_reward(r: torch.Tensor, confidence: torch.Tensor, running_mean: torch.Tensor | float,
                      w: float = 2.0) -> torch.Tensor:
    """``r̂ = r + w · (r − Δr) · (s − 0.5)`` with ``s = confidence / 10``; ``r``, ``confidence``: ``[n]``."""
    return r + w * (r - running_mean) * (confidence / 10.0 - 0.5)


class PPOCReward:
    """PPO-C around a scalar base reward (see the module docstring)."""

    batch_invariant = False  # Δr_t folds in every scored batch

    def __init__(self, base: Reward, w: float = 2.0, alpha: float = 0.1, mean: float | None = None):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.base, self.w, self.alpha = base, float(w), float(alpha)
        stored = getattr(base, "normalization", None)  # a checkpoint's manifest statistics, when it has them
        if mean is None and isinstance(stored, dict) and isinstance(stored.get("mean"), (int, float)):
            mean = stored["mean"]
        self.running_mean: float | None = None if mean is None else float(mean)
        self.missing = 0  # responses scored without a confidence statement (reward left unadjusted)
        self.scored = 0
        self.batch_metrics: dict[str, float] = {}  # of the last score call

    def _base(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        r = self.base.score(list(prompts), [strip_confidence(y) for y in responses]).float()
        if r.dim() != 1:
            raise ValueError("PPO-C needs a scalar base reward (scores of shape [n]); aggregate a multi-output "
                             "reward first (e.g. ensemble:mean:SPEC)")
        return r

    def calibrate(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> None:
        """Δr_0 = the mean base reward of these (initial-policy) samples, unless ``mean`` was given."""
        calibrate(self.base, prompts, responses)
        if self.running_mean is None:
            self.running_mean = float(self._base(prompts, responses).mean())

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        r = self._base(prompts, responses)
        stated = [read_confidence(y) for y in responses]
        self.missing += sum(c is None for c in stated)
        self.scored += len(stated)
        if len(r) == 0:
            return r
        batch_mean = float(r.double().mean())
        self.running_mean = batch_mean if self.running_mean is None else \
            self.alpha * batch_mean + (1.0 - self.alpha) * self.running_mean
        conf = torch.tensor([5.0 if c is None else c for c in stated], dtype=r.dtype, device=r.device)
        given = [c for c in stated if c is not None]
        self.batch_metrics = {"running_mean": self.running_mean, "confidence_missing": 1 - len(given) / len(stated),
                              "confidence_mean": sum(given) / len(given) if given else float("nan")}
        return calibrated_reward(r, conf, self.running_mean, self.w)


def parse_options(text: str) -> dict[str, float | None]:
    """``w=2,alpha=0.1,mean=0.3`` → options (unknown keys and bad numbers: UserError)."""
    out = dict(OPTIONS)
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in OPTIONS:
            raise UserError(f"ppoc option {item!r}: expected w=W, alpha=A or mean=M")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"ppoc option {item!r}: {value!r} is not a number") from None
    return out


def ppoc_from_spec(spec: str, load: Callable[[str], Reward]) -> PPOCReward:
    """``ppoc:[w=W,alpha=A,mean=M:]SPEC`` → PPOCReward around ``load(SPEC)``."""
    rest = spec.removeprefix("ppoc:")
    head, sep, tail = rest.partition(":")
    options = dict(OPTIONS)
    if sep and "=" in head:
        options, rest = parse_options(head), tail
    if not rest:
        raise UserError(f"reward spec {spec!r}: expected ppoc:[w=W,alpha=A,mean=M:]SPEC")
    alpha = options["alpha"]
    if not 0.0 < alpha <= 1.0:
        raise UserError(f"reward spec {spec!r}: alpha must be in (0, 1], got {alpha:g}")
    return PPOCReward(load(rest), w=options["w"], alpha=alpha, mean=options["mean"])
