"""Gold tracking: how a policy's proxy reward, gold reward and KL to its initial version move as it is optimized,
Gao et al.'s fit of the gold gain against d = √KL (:mod:`rewardlab.optimize.fits`), and the overoptimization plot.

Every evaluation samples the same prompts with the same seed (common random numbers), so the rows of a run differ
only by the policy. KL(π‖π₀) is the per-sequence k3 estimate (never negative), averaged over the samples.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.generation import Rollout, sample, sequence_kl_nonneg, sequence_logprobs
from rewardlab.optimize.common import reward_metrics, step_seed
from rewardlab.optimize.fits import describe, fit_gao, from_dict
from rewardlab.rewards.base import Reward


class GoldTracker:
    """Evaluates a policy against its initial version: proxy mean, gold mean, KL(π‖π₀) and d = √KL.

    Every evaluation samples the same prompts with the same seed (common random numbers). ``fit`` fits Gao et al.'s
    RL form to ``gold − gold(step 0)`` vs d. ``amp`` returns the context the policy forwards run in (autocast).
    """

    def __init__(self, prompts: Sequence[Prompt], proxy: Reward, gold: Reward | None, num_samples: int,
                 max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 batch_size: int = 64, max_prompt_length: int | None = None,
                 amp: Callable[[], AbstractContextManager] | None = None):
        self.prompts, self.proxy, self.gold = list(prompts), proxy, gold
        self.sampling = dict(num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=step_seed(seed, 0, 2), batch_size=batch_size,
                             max_prompt_length=max_prompt_length)
        self.amp = amp or contextlib.nullcontext
        self.history: list[dict[str, float]] = []

    @torch.no_grad()
    def evaluate(self, policy, ref, tokenizer, step: int, sampler: Callable[..., Rollout] = sample
                 ) -> dict[str, float]:
        """One evaluation row; ``sampler`` has :func:`~rewardlab.models.generation.sample`'s signature (a Session
        passes its engine's, :meth:`Session.sample_policy`)."""
        with self.amp():
            ro = sampler(policy, tokenizer, self.prompts, **self.sampling)
            pad = tokenizer.pad_token_id or 0
            t, bs = self.sampling["temperature"], self.sampling["batch_size"]
            logps, mask = sequence_logprobs(policy, ro.prompt_ids, ro.response_ids, pad, t, bs)
            ref_logps, _ = sequence_logprobs(ref, ro.prompt_ids, ro.response_ids, pad, t, bs)
        kl = sequence_kl_nonneg(logps, ref_logps, mask).mean().item()  # k3: a measured KL is never < 0
        row = {"step": step, "proxy_mean": self.proxy.score(ro.prompts, ro.responses).float().mean().item(),
               "kl": kl, "sqrt_kl": math.sqrt(max(kl, 0.0)),
               "response_tokens": mask.sum(1).mean().item(), **reward_metrics(self.proxy, "proxy_")}
        if self.gold is not None:
            row["gold_mean"] = self.gold.score(ro.prompts, ro.responses).float().mean().item()
            row |= reward_metrics(self.gold, "gold_")
        self.history = [h for h in self.history if h["step"] != step] + [row]
        return row

    def fit(self, form: str = "rl") -> dict[str, Any] | None:
        """Gao fit of gold gain vs √KL over the evaluations (None without gold); with too few evaluations it is
        marked insufficient (:func:`rewardlab.optimize.fits.fit_gao`)."""
        if self.gold is None or not self.history:
            return None
        g0 = self.history[0]["gold_mean"]
        return fit_gao([h["sqrt_kl"] for h in self.history], [h["gold_mean"] - g0 for h in self.history],
                       form).as_dict()


def plot_overoptimization(d: Sequence[float], proxy: Sequence[float], gold: Sequence[float] | None,
                          fit: dict[str, Any] | None, path: str | os.PathLike, title: str,
                          xlabel: str = "√KL(π ‖ π₀)  (nats^½)") -> None:
    """Proxy and gold gains (relative to the first point) vs d = √KL, with the fitted Gao curve for gold (only a
    sufficient fit is drawn; an insufficient one is named in the legend as n/a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(d, np.asarray(proxy) - proxy[0], "o-", label="proxy (Δ from start)")
    if gold is not None:
        ax.plot(d, np.asarray(gold) - gold[0], "s-", label="gold (Δ from start)")
    if fit is not None:
        f = from_dict(fit)
        if f.sufficient:
            grid = np.linspace(0, max(d), 100)
            ax.plot(grid, f.predict(grid), "--", label=f"Gao {f.form} fit α={f.alpha:.3g} β={f.beta:.3g} "
                    f"R²={f.r2:.2f}")
        else:
            ax.plot([], [], " ", label=describe(f))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("reward change")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
