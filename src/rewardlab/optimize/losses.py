"""Advantages and policy losses for the optimize loops — pure functions.

``dpo_loss`` (Rafailov et al. 2023) is re-exported from :mod:`rewardlab.train.losses`.

Shapes: ``P`` prompts, ``k`` samples per prompt, ``b = P·k`` sequences, ``T`` response tokens (right-padded, with a
``mask`` of 1 on real tokens). Sequence log-probs ``Σ_t log π(y_t)`` are ``(logps * mask).sum(-1)``.
"""

from __future__ import annotations

import torch

from rewardlab.train.losses import dpo_loss  # noqa: F401  (DPO lives with the other pairwise losses)


def kl_penalized_rewards(rewards: torch.Tensor, kl: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """``R_i = r(x, y_i) − β·KL_i`` with ``KL_i`` the sequence KL estimate (Ahmadian et al. 2024, RLOO). Shape kept."""
    return rewards - kl_coef * kl


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages ``A_i = R_i − (1/(k−1)) Σ_{j≠i} R_j`` within each prompt's group.

    ``rewards``: ``[P, k]`` with k ≥ 2. Returns ``[P, k]``. Kool et al. 2019; Ahmadian et al. 2024 ("Back to
    Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs").
    """
    k = rewards.shape[-1]
    if k < 2:
        raise ValueError(f"RLOO needs k >= 2 samples per prompt, got {k}")
    loo_mean = (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)
    return rewards - loo_mean


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalized advantages ``A_i = (R_i − mean(R)) / (std(R) + eps)`` within each group.

    ``rewards``: ``[P, k]``; std is the unbiased sample std (k−1 denominator, as in TRL's GRPOTrainer).
    Shao et al. 2024 (DeepSeekMath, GRPO). Returns ``[P, k]``; a group with equal rewards gets zeros.
    """
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + eps)


def reinforce_loss(logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline: ``L = −(1/b) Σ_i A_i · Σ_t log π(y_{i,t})``.

    ``logps``, ``mask``: ``[b, T]``; ``advantages``: ``[b]`` (treated as constants). Returns a scalar.
    """
    return -(advantages.detach() * (logps * mask).sum(-1)).mean()


def _clipped_surrogate(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                       clip_eps: float) -> torch.Tensor:
    """Per-token ``min(ρ_t·A_i, clip(ρ_t, 1−ε, 1+ε)·A_i)`` with ``ρ_t = exp(log π(y_t) − log π_old(y_t))``; [b, T]."""
    ratio = (logps - old_logps.detach()).exp()
    adv = advantages.detach()[:, None]
    return torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)


def ppo_clip_loss(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor,
                  clip_eps: float = 0.2) -> torch.Tensor:
    """PPO clipped surrogate with a sequence-level advantage applied to every token (Schulman et al. 2017).

    ``ρ_t = exp(log π(y_t) − log π_old(y_t))``;
    ``L = −mean_{tokens} min(ρ_t·A_i, clip(ρ_t, 1−ε, 1+ε)·A_i)`` averaged over the masked tokens of the batch.
    ``logps``, ``old_logps``, ``mask``: ``[b, T]``; ``advantages``: ``[b]``. Returns a scalar.
    """
    surrogate = _clipped_surrogate(logps, old_logps, advantages, clip_eps)
    return -(surrogate * mask).sum() / mask.sum().clamp_min(1)


def _k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token ``k3 = exp(q − p) − (q − p) − 1`` (``p = log π``, ``q = log π_ref`` detached); [b, T]."""
    d = ref_logps.detach() - logps
    return d.exp() - d - 1


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``k3 = exp(q − p) − (q − p) − 1`` with ``p = log π``, ``q = log π_ref``, averaged over
    masked tokens (non-negative, unbiased for KL(π‖π_ref) under y ~ π; Schulman 2020, used in the GRPO loss of
    Shao et al. 2024). Inputs ``[b, T]``; returns a scalar with gradient through ``logps``."""
    return (_k3(logps, ref_logps) * mask).sum() / mask.sum().clamp_min(1)


def sequence_token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(1/b) Σ_i (1/|y_i|) Σ_t x_{i,t}``: each sequence's mean over its masked tokens, then the mean over
    sequences (every sequence weighs the same whatever its length). ``x``, ``mask``: ``[b, T]``; a scalar."""
    return ((x * mask).sum(-1) / mask.sum(-1).clamp_min(1)).mean()


def grpo_loss(logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor, ref_logps: torch.Tensor,
              kl_coef: float, old_logps: torch.Tensor | None = None, clip_eps: float = 0.2) -> torch.Tensor:
    """The GRPO objective of Shao et al. 2024 (DeepSeekMath, eq. 3), negated, every term a per-sequence token mean:

        L = −(1/b) Σ_i (1/|y_i|) Σ_t [ s_{i,t} − β·k3_{i,t} ]

    with ``s_{i,t} = min(ρ_t·A_i, clip(ρ_t, 1−ε, 1+ε)·A_i)``, ``ρ_t = π(y_t)/π_old(y_t)`` when ``old_logps`` is
    given, else ``s_{i,t} = A_i·log π(y_t)`` (REINFORCE: the same gradient as the clipped term at ρ = 1), and
    ``k3`` as in :func:`kl_k3`. The policy and KL terms share the ``1/|y_i|`` normalization, so β weighs them at the
    same per-token scale at any response length (a sequence-sum policy term would make β act |y|× weaker).
    ``logps``, ``mask``, ``ref_logps``, ``old_logps``: ``[b, T]``; ``advantages``: ``[b]``. Returns a scalar.
    """
    if old_logps is None:
        policy_term = advantages.detach()[:, None] * logps
    else:
        policy_term = _clipped_surrogate(logps, old_logps, advantages, clip_eps)
    return -sequence_token_mean(policy_term - kl_coef * _k3(logps, ref_logps), mask)


def sft_loss(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood of the response tokens, ``−Σ_{i,t} log π(y_{i,t}) / Σ mask`` (RAFT's
    fine-tuning step). Inputs ``[b, T]``; returns a scalar."""
    return -(logps * mask).sum() / mask.sum().clamp_min(1)


def token_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact per-position ``KL(π‖π_ref) = Σ_v π(v) (log π(v) − log π_ref(v))`` over the whole vocabulary from
    next-token logits ``[b, T, V]`` (``ref_logits`` detached); returns ``[b, T]``, every entry ≥ 0."""
    logp = logits.log_softmax(-1)
    return (logp.exp() * (logp - ref_logits.detach().log_softmax(-1))).sum(-1)


def superhf_loss(logits: torch.Tensor, ref_logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                 kl_coef: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SuperHF's loss on the reward-filtered completions (Mukobi et al. 2023, "SuperHF: Supervised Iterative
    Learning from Human Feedback"): supervised cross-entropy plus a KL prior to the reference model,

        L = −(1/N) Σ_{i,t} log π(y_{i,t})  +  β · (1/N) Σ_{i,t} KL(π(·|x_i, y_{i,<t}) ‖ π_ref(·|x_i, y_{i,<t}))

    both averaged over the N = Σ mask completion tokens, the KL exact over the vocabulary at each of them.
    ``logits``, ``ref_logits``: ``[b, T, V]``; ``targets`` (token ids), ``mask``: ``[b, T]``. Returns
    ``(L, cross-entropy, KL)``. The direction KL(π‖π_ref) is that of the KL-regularized objective the paper
    derives SuperHF from; the authors' released trainer computes the reverse, KL(π_ref‖π) (torch's KLDivLoss with
    the reference as target), per completion token, clamped at 0."""
    logp = logits.log_softmax(-1)
    n = mask.sum().clamp_min(1)
    ce = -(logp.gather(-1, targets[..., None]).squeeze(-1) * mask).sum() / n
    kl = (token_kl(logits, ref_logits) * mask).sum() / n
    return ce + kl_coef * kl, ce, kl
