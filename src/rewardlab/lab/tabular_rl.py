"""Optimizing a tabular softmax policy against reward tables — the setting Razin et al.'s theory is stated in.

Policy: logits θ ∈ R^{P×C}, π_θ(y|x) = softmax(θ_x). Objective per prompt (KL-regularized RLHF):

    J_x(θ) = E_{y~π}[r(x, y)] − β·KL(π(·|x) ‖ π₀(·|x))

* exact policy gradient: ∂J_x/∂θ_{x,y} = π(y)·(g(y) − E_π g),   g(y) = r(x, y) − β·log(π(y)/π₀(y))
  (the −β·Σπ·∂logπ term vanishes because Σ_y π(y)(δ_{yj} − π_j) = 0); plain gradient ascent θ ← θ + η∇J.
* RLOO (Ahmadian et al. 2024; Razin et al. use k = 2, β = 0.05): sample y_1..y_k ~ π(x), rewards
  R_i = r(x, y_i) − β·log(π(y_i)/π₀(y_i)), leave-one-out advantages A_i, REINFORCE step
  θ_x ← θ_x + η·(1/k)·Σ_i A_i·(e_{y_i} − π(x)) (∇_θ log π(y) = e_y − π for a softmax).
* best-of-n, exactly: with candidates sorted by proxy score (ascending) and F_j = Σ_{i≤j} π₀(y_(i)),
  P(BoN picks y_(j)) = F_j^n − F_{j−1}^n (proxy scores are continuous, so ties have probability 0).

Every function is vectorized over a leading axis of R reward tables ([R, P, C]), so a whole zoo of proxies is
optimized in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardlab.lab.world import expectation, kl, probs
from rewardlab.optimize.losses import rloo_advantages


def exact_gradient(logits: torch.Tensor, ref_logits: torch.Tensor, reward: torch.Tensor, beta: float) -> torch.Tensor:
    """∇_θ J for every prompt: [R, P, C] (or [P, C]); see the module docstring."""
    p = probs(logits)
    g = reward - beta * (torch.log_softmax(logits, -1) - torch.log_softmax(ref_logits, -1))
    return p * (g - (p * g).sum(-1, keepdim=True))


def rloo_gradient(logits: torch.Tensor, ref_logits: torch.Tensor, reward: torch.Tensor, beta: float, k: int,
                  generator: torch.Generator) -> torch.Tensor:
    """One RLOO REINFORCE gradient estimate [R, P, C] from k samples per prompt and reward table."""
    R, P, C = logits.shape
    p = probs(logits)
    y = torch.multinomial(p.reshape(R * P, C), k, replacement=True, generator=generator).reshape(R, P, k)
    log_ratio = torch.log_softmax(logits, -1) - torch.log_softmax(ref_logits, -1).expand(R, P, C)
    rewards = reward.gather(-1, y) - beta * log_ratio.gather(-1, y)            # [R, P, k]
    adv = rloo_advantages(rewards.reshape(R * P, k)).reshape(R, P, k)
    onehot_sum = torch.zeros_like(logits).scatter_add_(-1, y, adv)             # Σ_i A_i e_{y_i}
    return (onehot_sum - adv.sum(-1, keepdim=True) * p) / k


@dataclass
class Trajectory:
    """Recorded along an optimization run, at ``steps``: per reward table r and prompt x."""

    steps: list[int]
    gold: list[torch.Tensor]   # E_π[r*] per (r, x): [R, P] at each recorded step
    proxy: list[torch.Tensor]  # E_π[r]   per (r, x): [R, P]
    kl: list[torch.Tensor]     # KL(π‖π₀) per (r, x): [R, P]

    def stacked(self, name: str) -> torch.Tensor:
        """[T, R, P] tensor of a recorded quantity."""
        return torch.stack(getattr(self, name))


def optimize(ref_logits: torch.Tensor, reward: torch.Tensor, gold: torch.Tensor, *, beta: float, lr: float,
             steps: int, record: list[int], method: str = "exact", k: int = 2,
             generator: torch.Generator | None = None, features: torch.Tensor | None = None) -> Trajectory:
    """Gradient ascent from π₀ on J for each of the R reward tables ``reward`` [R, P, C] (method "exact" or
    "rloo"), recording gold/proxy expectations and KL at the steps in ``record`` (0 = the initial policy).

    With ``features`` [P, C, D] the policy also has weights w shared across prompts and candidates:
    logits = θ₀ + θ + φ·w, so it *generalizes* like a language model ("write longer" moves every long answer up).
    ∂J/∂w = (1/P)·Σ_{x,y} (∂J_x/∂logit_{x,y})·φ(x, y), stepped with the same learning rate.
    """
    R = reward.shape[0]
    logits = ref_logits.expand(R, -1, -1).clone()
    traj = Trajectory([], [], [], [])
    want = set(record)
    for t in range(steps + 1):
        if t in want:
            traj.steps.append(t)
            traj.gold.append(expectation(logits, gold))
            traj.proxy.append(expectation(logits, reward))
            traj.kl.append(kl(logits, ref_logits))
        if t == steps:
            break
        if method == "exact":
            grad = exact_gradient(logits, ref_logits, reward, beta)
        elif method == "rloo":
            assert generator is not None, "RLOO samples: pass a generator"
            grad = rloo_gradient(logits, ref_logits, reward, beta, k, generator)
        else:
            raise ValueError(f"unknown method {method!r}")
        logits = logits + lr * grad
        if features is not None:  # the shared part: Δlogits = φ·Δw with Δw = lr·∂J/∂w
            dw = torch.einsum("rpc,pcd->rd", grad, features) / features.shape[0]
            logits = logits + lr * torch.einsum("pcd,rd->rpc", features, dw)
    return traj


def bon_distribution(ref_logits: torch.Tensor, proxy: torch.Tensor, n: int) -> torch.Tensor:
    """Exact best-of-n distribution over candidates [R, P, C] for proxy tables [R, P, C] and samples from π₀."""
    order = proxy.argsort(-1)
    p_sorted = probs(ref_logits).expand_as(proxy).gather(-1, order)
    F = p_sorted.cumsum(-1).clamp(max=1.0)
    F_prev = torch.cat([torch.zeros_like(F[..., :1]), F[..., :-1]], dim=-1)
    p_bon_sorted = F.pow(n) - F_prev.pow(n)
    return torch.zeros_like(p_bon_sorted).scatter_(-1, order, p_bon_sorted)


def bon_curve(ref_logits: torch.Tensor, proxy: torch.Tensor, gold: torch.Tensor, ns: list[int]) -> dict:
    """Exact BoN for each n: gold and proxy expectations [len(ns), R, P] and the exact KL(π_BoN‖π₀) [len(ns), R, P]."""
    out: dict[str, list] = {"gold": [], "proxy": [], "kl": []}
    p0 = probs(ref_logits)
    for n in ns:
        q = bon_distribution(ref_logits, proxy, n)
        out["gold"].append((q * gold).sum(-1))
        out["proxy"].append((q * proxy).sum(-1))
        ratio = torch.where(q > 0, q * (q.clamp_min(1e-300).log() - p0.log()), torch.zeros_like(q))
        out["kl"].append(ratio.sum(-1))
    return {k: torch.stack(v) for k, v in out.items()}
