"""MaxMin-RLHF's reward mixture (Chakraborty et al. 2024, "MaxMin-RLHF: Alignment with Diverse Human Preferences",
Algorithm 1): K Bradley–Terry rewards learned by hard expectation–maximization over *units* (annotators, when the data
names them; else single pairs).

With units ``h`` and their pairs ``D_h``, each round is::

    E-step   g(h) = argmax_k  Σ_{(x, y_c, y_r) ∈ D_h}  log σ(r_k(x, y_c) − r_k(x, y_r))     (the group whose RM
                                                                                         explains h best)
    M-step   r_k ← argmin  −Σ_{h: g(h) = k} Σ_{D_h} log σ(r_k(x, y_c) − r_k(x, y_r))       (refit each group's RM)

until no unit changes group (or ``rounds``). The K rewards are the K heads of one
:class:`~rewardlab.models.mixture.MixtureRewardModel` (MiCRo's model: same checkpoint format, spec ``micro:DIR``), so
the M-step is MiCRo's mixture likelihood with the routing fixed to the one-hot assignment —
``−log Σ_k 1[k = g(h)] σ(Δ_k) = −log σ(Δ_g(h))`` — trained on :mod:`rewardlab.train.engine` like
:mod:`rewardlab.train.mixture` (AdamW, constant lr, ``epochs`` passes per round, continuing from the previous round's
weights). The router is not trained (it stays uniform: ``micro:DIR`` scores the mean of the heads).

Initialization: the first E-step runs on the freshly initialized heads (random directions), so units that agree get
the same group from the start; a group left empty by an E-step takes the unit worst explained by its own group (the
k-means fix), so K groups stay K. :func:`hard_em` is the loop on any (E, M) pair of functions; :func:`fit_mixture_em`
plugs in the heads. With the groups *given* (``--group-field``) there is no E-step: one M-step on the given groups.

Against MiCRo (:mod:`rewardlab.train.mixture`): MiCRo maximizes the soft mixture likelihood of each pair without
annotator identities; this hard EM pools every pair of an annotator, which is what separates a minority whose
individual pairs look like noise.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import PreferencePair
from rewardlab.models.mixture import MixtureEncoder, MixtureRewardModel
from rewardlab.train.mixture import MixtureConfig, MixtureObjective


@dataclass
class EMResult:
    """``assignment[u]`` the group of unit u (units in first-seen order, ``units``), ``history`` one row per round:
    ``{"round", "loglik" (Σ over pairs of log σ(Δ) under the assignment), "changed" (units that moved), "sizes"
    (units per group), "pairs" (pairs per group)}``."""

    units: list[Hashable]
    assignment: list[int]
    history: list[dict[str, Any]]
    converged: bool


def unit_loglik(pair_loglik: torch.Tensor, unit_of_pair: torch.Tensor, n_units: int) -> torch.Tensor:
    """``L[u, k] = Σ_{i: unit(i) = u} pair_loglik[i, k]``; pair_loglik ``[n, K]``, unit_of_pair ``[n]`` → ``[U, K]``."""
    out = torch.zeros(n_units, pair_loglik.shape[1], dtype=pair_loglik.dtype)
    return out.index_add_(0, unit_of_pair, pair_loglik)


def e_step(L: torch.Tensor) -> torch.Tensor:
    """Hard assignment ``g(u) = argmax_k L[u, k]`` (ties: the lower k); then every empty group takes the unit whose
    own group explains it worst (lowest ``L[u, g(u)]``) among groups with more than one unit. ``[U, K]`` → ``[U]``."""
    g = L.argmax(1)
    K = L.shape[1]
    for k in range(K):
        if (g == k).any():
            continue
        sizes = torch.bincount(g, minlength=K)
        movable = sizes[g] > 1
        if not movable.any():
            break  # fewer units than groups
        own = L.gather(1, g[:, None])[:, 0].masked_fill(~movable, float("inf"))
        g[own.argmin()] = k
    return g


def hard_em(units: Sequence[Hashable], k: int, pair_loglik: Callable[[], torch.Tensor],
            m_step: Callable[[torch.Tensor], None], rounds: int = 5,
            log: Callable[[dict[str, Any]], None] | None = None) -> EMResult:
    """Hard EM over the units of the pairs (``units[i]``: the unit of pair i). ``pair_loglik()``: ``[n, K]``
    log-likelihoods ``log σ(Δ_ik)`` under the current rewards; ``m_step(group_of_pair [n])`` refits them. Starts with
    an E-step on the initial rewards; stops when an E-step moves no unit (converged) or after ``rounds`` M-steps."""
    names = list(dict.fromkeys(units))
    index = {u: i for i, u in enumerate(names)}
    unit_of_pair = torch.tensor([index[u] for u in units], dtype=torch.long)
    g = e_step(unit_loglik(pair_loglik().double(), unit_of_pair, len(names)))
    history, converged = [], False
    for r in range(1, rounds + 1):
        m_step(g[unit_of_pair])
        L = unit_loglik(pair_loglik().double(), unit_of_pair, len(names))
        new = e_step(L)
        changed = int((new != g).sum())
        g = new
        row = {"round": r, "loglik": float(L.gather(1, g[:, None]).sum()), "changed": changed,
               "sizes": torch.bincount(g, minlength=k).tolist(),
               "pairs": torch.bincount(g[unit_of_pair], minlength=k).tolist()}
        history.append(row)
        if log is not None:
            log(row)
        if changed == 0:
            converged = True
            break
    return EMResult(names, g.tolist(), history, converged)


# ----------------------------------------------------------------------------------------- the heads of a mixture


class AssignedObjective(MixtureObjective):
    """The M-step: each pair's BT loss on its group's head, ``−log σ(Δ_{i, g(i)})`` (MiCRo's mixture likelihood with
    one-hot routing; :func:`rewardlab.train.losses.mixture_bt_loss` gives the same number)."""

    name = "maxmin-em"

    def __init__(self, encoder: MixtureEncoder, pairs: Sequence[PreferencePair], cfg: MixtureConfig):
        super().__init__(encoder, pairs, cfg)
        self.group = torch.zeros(len(pairs), dtype=torch.long)

    def loss(self, model: torch.nn.Module, idx: list[int], device) -> tuple[torch.Tensor, None]:
        ids, mask = pad_batch([self.chosen[i] for i in idx] + [self.rejected[i] for i in idx], self.pad_id)
        r = model.heads(ids.to(device), mask.to(device)).float()
        delta = r[: len(idx)] - r[len(idx):]
        g = self.group[idx].to(device)
        return -F.logsigmoid(delta.gather(1, g[:, None])[:, 0]).mean(), None

    @torch.no_grad()
    def margins(self, model: MixtureRewardModel, batch_size: int = 64) -> torch.Tensor:
        """Every head's margin on every pair, ``Δ [n, K]`` (eval mode, fp32)."""
        device = next(model.parameters()).device
        model.eval()
        out = []
        for s in range(0, len(self.chosen), batch_size):
            idx = list(range(s, min(s + batch_size, len(self.chosen))))
            ids, mask = pad_batch([self.chosen[i] for i in idx] + [self.rejected[i] for i in idx], self.pad_id)
            r = model.heads(ids.to(device), mask.to(device)).float().cpu()
            out.append(r[: len(idx)] - r[len(idx):])
        return torch.cat(out)


def fit_mixture_em(model: MixtureRewardModel, tokenizer, pairs: Sequence[PreferencePair],
                   units: Sequence[Hashable] | None, cfg: MixtureConfig, rounds: int = 5,
                   groups: Sequence[int] | None = None, progress: bool = True,
                   dtype: str | torch.dtype | None = None) -> EMResult:
    """Fit the K heads of ``model`` by hard EM over ``units`` (one per pair; None: every pair its own unit), or —
    ``groups`` given, one group index < K per pair — by one M-step on those groups (returned as a converged result
    whose units are the groups). ``cfg.epochs`` passes per M-step; see the module docstring."""
    from rewardlab.errors import UserError
    from rewardlab.models.device import resolve_dtype
    from rewardlab.train.engine import Engine, Loop

    device = next(model.parameters()).device
    dtype = resolve_dtype(dtype, device)
    if dtype == torch.float16 and device.type == "cpu":
        raise UserError("--dtype fp16 needs a GPU to train on (use bf16 or fp32 on the CPU)")
    precision = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    objective = AssignedObjective(MixtureEncoder(tokenizer, cfg.max_length), pairs, cfg)
    rounds_done = [0]

    def m_step(group_of_pair: torch.Tensor) -> None:
        objective.group = group_of_pair.clone()
        loop = Loop(lr=cfg.lr, epochs=cfg.epochs, weight_decay=0.01, schedule="constant",
                    seed=cfg.seed + rounds_done[0], mixed_precision=precision, cpu=device.type == "cpu",
                    place_model=False)
        engine = Engine(loop, "maxmin-em", progress=progress)
        if engine.world > 1:
            raise UserError("a mixture trains in one process (no `accelerate launch` data parallelism)")
        engine.fit(objective, model)
        rounds_done[0] += 1

    def pair_loglik() -> torch.Tensor:
        return F.logsigmoid(objective.margins(model))

    if groups is not None:
        g = torch.tensor(list(groups), dtype=torch.long)
        m_step(g)
        L = pair_loglik().double().gather(1, g[:, None]).sum()
        pairs = torch.bincount(g, minlength=cfg.k).tolist()
        model.eval()
        return EMResult(list(range(cfg.k)), list(range(cfg.k)),
                        [{"round": 1, "loglik": float(L), "changed": 0, "sizes": [1] * cfg.k, "pairs": pairs}], True)
    result = hard_em(list(units) if units is not None else list(range(len(pairs))), cfg.k, pair_loglik, m_step,
                     rounds)
    model.eval()
    return result
