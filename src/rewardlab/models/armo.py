"""The model of an ArmoRM (Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward Modeling and
Mixture-of-Experts"): absolute-rating attribute heads + a mixture-of-experts gate, on a frozen backbone.

1. Features ``h(x, y) ∈ R^d`` = the pooled hidden state of a **frozen** backbone (last non-pad token, as RewardModel).
2. One linear regression head per attribute, fitted in closed form by ridge regression on rated rows::

       w_i = argmin_w ||X_c w − y_c||² + λ||w||²  = (X_cᵀX_c + λI)⁻¹ X_cᵀ y_c,   b_i = ȳ − x̄ᵀw_i

   (``X_c``, ``y_c`` centred, so the intercept is not penalized); attribute scores ``r(x, y) = W h + b ∈ R^k``.
3. Optional verbosity decorrelation: ``r'_i = r_i − λ_i r_v`` with ``λ_i = Cov(r_i, r_v) / Var(r_v)`` on a reference
   set, which makes the Pearson correlation of every ``r'_i`` with the verbosity score ``r_v`` exactly 0 there
   (ArmoRM picks λ_i from a Spearman-correlation target; Pearson gives it in closed form). ``λ_v = 0``.
4. A gating network ``g(x) = softmax(MLP(h_prompt(x))) ∈ Δ^k`` (non-negative, sums to 1) on the prompt's features,
   with a learned scale β; the preference score is ``R(x, y) = β · g(x)ᵀ r'(x, y)``, trained with the BT loss
   ``−log σ(R(x, y_w) − R(x, y_l))`` on preference pairs (backbone and regression heads frozen).

Fitting is :mod:`rewardlab.train.multiobjective`'s, the checkpoint format :mod:`rewardlab.models.formats.armo`'s, the
Reward (and DPA over the attributes) :mod:`rewardlab.rewards.multiobjective`'s. Shapes: ``n`` items, ``d`` feature
dims, ``k`` attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rewardlab.data.records import Prompt, Response
from rewardlab.models.reward_model import RewardModel, _hidden_size
from rewardlab.models.scorer import PooledScorer

# ------------------------------------------------------------------------------------------------ pure functions


def ridge_fit(X: torch.Tensor, Y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression with an unpenalized intercept, in closed form (float64).

    ``X`` ``[n, d]``, ``Y`` ``[n, k]`` → ``(W [k, d], b [k])`` with ``Y ≈ X Wᵀ + b``; ``W = ((X_cᵀX_c + λI)⁻¹ X_cᵀ
    Y_c)ᵀ``, ``b = ȳ − x̄ Wᵀ``. ``lam = 0`` is ordinary least squares (``X_c`` must then have full column rank).
    """
    X, Y = X.double(), Y.double()
    x_mean, y_mean = X.mean(0), Y.mean(0)
    Xc, Yc = X - x_mean, Y - y_mean
    A = Xc.T @ Xc + lam * torch.eye(X.shape[1], dtype=X.dtype)
    W = torch.linalg.solve(A, Xc.T @ Yc).T
    return W, y_mean - x_mean @ W.T


def decorrelation_coefs(scores: torch.Tensor, verbosity: int) -> torch.Tensor:
    """``λ_i = Cov(r_i, r_v) / Var(r_v)`` over a reference set ``scores [n, k]``; ``λ_v = 0``. Returns ``[k]``."""
    s = scores.double()
    v = s[:, verbosity] - s[:, verbosity].mean()
    lam = ((s - s.mean(0)) * v[:, None]).mean(0) / (v * v).mean().clamp_min(1e-12)
    lam[verbosity] = 0.0
    return lam


def decorrelate(scores: torch.Tensor, lam: torch.Tensor | None, verbosity: int | None) -> torch.Tensor:
    """``r'_i = r_i − λ_i r_v`` (``[n, k]``); identity when there is no verbosity attribute."""
    if lam is None or verbosity is None:
        return scores
    return scores - lam.to(scores.dtype)[None, :] * scores[:, verbosity : verbosity + 1]


def armo_score(scores: torch.Tensor, gate: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """``R = β · Σ_i g_i r'_i``: ``scores``, ``gate`` ``[n, k]`` → ``[n]``."""
    return beta * (gate * scores).sum(-1)


class GatingNetwork(nn.Module):
    """``g(f) = softmax(MLP((f − μ) / σ))`` over k attributes, plus the learned scale ``β = exp(log_beta)``."""

    def __init__(self, in_dim: int, k: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(dims[i], dims[i + 1]), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], k))
        self.mlp = nn.Sequential(*mods)
        self.log_beta = nn.Parameter(torch.zeros(()))
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp((f - self.in_mean) / self.in_std), dim=-1)

    @property
    def beta(self) -> torch.Tensor:
        return self.log_beta.exp()


# ------------------------------------------------------------------------------------------------ features


def identity_head_model(backbone: nn.Module, pooling: str):
    """A RewardModel whose head is the identity: its "scores" are the pooled features ``[n, d]`` (exact in fp32)."""
    d = _hidden_size(backbone.config)
    model = RewardModel(backbone, num_outputs=d, pooling=pooling)
    with torch.no_grad():
        model.head.weight.copy_(torch.eye(d))
        model.head.bias.zero_()
    return model.eval()


def prompt_text(tokenizer, prompt: Prompt) -> str:
    """The prompt as one text for the gate's features: plain text, or the chat template with generation prompt."""
    if isinstance(prompt, str):
        return prompt
    from rewardlab.data.tokenize import _chat_template

    return tokenizer.apply_chat_template(list(prompt), chat_template=_chat_template(tokenizer), tokenize=False,
                                         add_generation_prompt=True)


class FeatureExtractor:
    """Frozen-backbone features of (prompt, response) items and of prompts alone, batched by a PooledScorer."""

    def __init__(self, backbone: nn.Module, tokenizer, pooling: str = "last", max_length: int = 512,
                 batch_size: int = 32, device: str | torch.device | None = None):
        self.scorer = PooledScorer(identity_head_model(backbone, pooling), tokenizer, max_length=max_length,
                                   batch_size=batch_size, device=device)
        self.tokenizer = tokenizer

    def items(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """``h(x, y)`` ``[n, d]``."""
        return self.scorer.score_ids(self.scorer.encode(prompts, responses)).reshape(len(prompts), -1)

    def prompts(self, prompts: Sequence[Prompt]) -> torch.Tensor:
        """``h(x)`` ``[n, d]``, each distinct prompt encoded once."""
        keys = [prompt_text(self.tokenizer, p) for p in prompts]
        uniq = list(dict.fromkeys(keys))
        # encoded as a prompt with an empty response: over budget it loses its beginning, never its end
        feats = self.scorer.score_ids([self.scorer.encoder.encode(t, "") for t in uniq]).reshape(len(uniq), -1)
        pos = {k: i for i, k in enumerate(uniq)}
        return feats[[pos[k] for k in keys]]


# ------------------------------------------------------------------------------------------------ the model


class ArmoRM:
    """A loaded ArmoRM: ``score`` → ``[n]`` gated preference scores ``R(x, y)``; ``attributes`` → raw attribute
    scores ``[n, k]``; ``inspect`` → everything (scores, weights, β)."""

    def __init__(self, extractor: FeatureExtractor, weight: torch.Tensor, bias: torch.Tensor, names: list[str],
                 gate: GatingNetwork, verbosity: str | None = None, decorrelation: torch.Tensor | None = None):
        self.extractor, self.names, self.gate = extractor, list(names), gate.eval()
        self.weight, self.bias = weight.float(), bias.float()
        self.verbosity = verbosity
        self.v_index = names.index(verbosity) if verbosity is not None else None
        self.decorrelation = decorrelation

    def attributes_from_features(self, h: torch.Tensor) -> torch.Tensor:
        return h.float() @ self.weight.T + self.bias

    def attributes(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        """Raw attribute scores ``r(x, y)`` ``[n, k]`` (columns in ``self.names`` order)."""
        return self.attributes_from_features(self.extractor.items(prompts, responses))

    @torch.no_grad()
    def inspect(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> dict[str, Any]:
        """``{"names", "attributes" [n,k], "decorrelated" [n,k], "gate" [n,k], "beta", "score" [n]}``."""
        r = self.attributes(prompts, responses)
        rd = decorrelate(r, self.decorrelation, self.v_index)
        g = self.gate(self.extractor.prompts(prompts).float()) if len(prompts) else torch.zeros_like(r)
        return {"names": self.names, "attributes": r, "decorrelated": rd, "gate": g, "beta": self.gate.beta.item(),
                "score": armo_score(rd, g, self.gate.beta)}

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if not prompts:
            return torch.zeros(0)
        return self.inspect(prompts, responses)["score"].float()
