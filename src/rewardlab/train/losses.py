"""Reward-model training losses as pure functions on reward tensors (DESIGN §4).

All take ``r_chosen``, ``r_rejected`` of shape ``[b]`` and return the per-pair loss ``[b]`` (reduce it yourself, e.g.
a weighted mean), so they compose and test in isolation.
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
