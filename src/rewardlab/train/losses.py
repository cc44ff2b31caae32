"""Reward-model training losses as pure functions on reward tensors.

The pairwise ones take ``r_chosen``, ``r_rejected`` of shape ``[b]`` and return the per-pair loss ``[b]`` (reduce it
yourself, e.g. a weighted mean), so they compose and test in isolation. The mixture ones (MiCRo, MaxMin-RLHF) take
the K heads' margins ``[b, K]`` and router logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float = 0.0,
            centering: float = 0.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """Bradley–Terry loss with an optional margin, reward-centering term and label smoothing.

    ``Δ = r_c − r_r − m``                      margin m: Llama 2 (Touvron et al. 2023)
    ``L = −(1 − ε)·log σ(Δ) − ε·log σ(−Δ)``    ε = label smoothing: Secrets of RLHF II (Wang et al. 2024)
    ``  + η·(r_c + r_r)²``                      η = centering: Eisenstein et al. 2023 (TRL uses ~0.01)

    With m = 0, ε = 0, η = 0 this is the plain BT negative log-likelihood ``−log σ(r_c − r_r)``
    (Bradley & Terry 1952; Ouyang et al. 2022). ``log σ`` is computed with ``logsigmoid`` for stability.
    """
    delta = r_chosen - r_rejected - margin
    loss = -F.logsigmoid(delta)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-delta)
    if centering:
        loss = loss + centering * (r_chosen + r_rejected) ** 2
    return loss


def pairwise_correct(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """1.0 where the chosen response scores strictly higher (a tie counts as wrong), shape ``[b]``."""
    return (r_chosen > r_rejected).float()


def dpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
             ref_rejected_logps: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO (Rafailov et al. 2023): the BT loss on the implicit rewards ``r = β·(log π(y|x) − log π_ref(y|x))``::

        L = −log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])

    ``label_smoothing`` ε gives the conservative/robust variant ``−(1−ε) log σ(βΔ) − ε log σ(−βΔ)`` (cDPO,
    Mitchell 2023). All inputs are sequence log-probs ``Σ_t log π(y_t | x, y_<t)`` of shape ``[b]``; the reference
    terms are treated as constants. Returns the per-pair losses ``[b]``.
    """
    r_chosen = beta * (chosen_logps - ref_chosen_logps.detach())
    r_rejected = beta * (rejected_logps - ref_rejected_logps.detach())
    return bt_loss(r_chosen, r_rejected, label_smoothing=label_smoothing)


def mixture_bt_loss(delta: torch.Tensor, router_logits: torch.Tensor) -> torch.Tensor:
    """MiCRo mixture likelihood (Shen et al. 2025), per pair: ``−log Σ_k softmax(router)_k · σ(Δ_k)``.

    delta: ``[b, K]`` head margins ``r_k(chosen) − r_k(rejected)``; router_logits: ``[b, K]`` (or ``[K]``, shared).
    Returns ``[b]``. Computed as ``−logsumexp(log_softmax(router) + logσ(Δ))`` (stable). K = 1: the BT loss."""
    log_w = torch.log_softmax(router_logits, -1).expand_as(delta)
    return -torch.logsumexp(log_w + F.logsigmoid(delta), dim=-1)


def balance_penalty(router_logits: torch.Tensor) -> torch.Tensor:
    """``KL(w̄ ‖ uniform) = Σ_k w̄_k log(K w̄_k)`` with ``w̄`` the batch-mean routing ``[K]``; 0 when heads are used
    equally (it keeps MiCRo's heads from collapsing into one). router_logits: ``[b, K]``. Scalar."""
    w = torch.softmax(router_logits, -1).mean(0)
    return (w * torch.log(w.clamp_min(1e-12) * w.shape[-1])).sum()


def mixture_probability(delta: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``P(chosen ≻ rejected) = Σ_k w_k σ(Δ_k)``; delta ``[b, K]``, weights ``[b, K]`` or ``[K]`` → ``[b]``."""
    return (weights.expand_as(delta) * torch.sigmoid(delta)).sum(-1)


def maxmin_weights(group_values: torch.Tensor, temperature: float = 0.0) -> torch.Tensor:
    """Weights over groups for MaxMin-RLHF's ``max_π min_k J_k`` (Chakraborty et al. 2024): one-hot on the worst
    group (the subgradient of the min) when ``temperature`` is 0, else the smooth ``softmax(−J/τ)``.
    group_values ``[K]`` → ``[K]``."""
    if temperature > 0:
        return torch.softmax(-group_values / temperature, -1)
    return F.one_hot(group_values.argmin(), group_values.shape[-1]).to(group_values.dtype)
