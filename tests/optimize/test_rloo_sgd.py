"""RLOOArgs(optimizer="sgd"): the step is proportional to the gradient (AdamW's is not), and resume stays exact."""

import math

import pytest
import torch

from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.optimize.rloo import RLOOArgs, train_rloo
from rewardlab.rewards.base import FunctionReward

SHORT = dict(max_new_tokens=12, eval_prompts=8, eval_samples=2, prompts_per_step=8, k=2, kl_coef=0.0,
             eval_every=0, max_grad_norm=math.inf)


def letters(scale: float) -> FunctionReward:
    return FunctionReward(lambda p, r: scale * sum(c in "aeiou" for c in r), name=f"vowels×{scale:g}")


def step_size(tokenizer, corpus, optimizer: str, scale: float) -> float:
    """‖θ₁ − θ₀‖ after one RLOO step against ``scale`` × a fixed reward (same samples for every scale)."""
    model = tiny_causal_lm(tokenizer, seed=0)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train_rloo(model, tokenizer, letters(scale), corpus[:16], RLOOArgs(steps=1, lr=1e-3, optimizer=optimizer, **SHORT),
               progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((after - before).norm())


def test_sgd_step_scales_with_the_reward_and_adamw_does_not(tokenizer, corpus):
    # REINFORCE with a leave-one-out baseline and β = 0: the gradient is linear in the reward, so SGD's step is 10x
    # larger for a 10x reward; AdamW's first step is ≈ lr·sign(g) whatever the scale.
    sgd = step_size(tokenizer, corpus, "sgd", 10.0) / step_size(tokenizer, corpus, "sgd", 1.0)
    adamw = step_size(tokenizer, corpus, "adamw", 10.0) / step_size(tokenizer, corpus, "adamw", 1.0)
    assert sgd == pytest.approx(10.0, rel=1e-3)
    assert adamw == pytest.approx(1.0, abs=0.05)


def test_sgd_resume_continues_exactly(tokenizer, corpus, tmp_path):
    def run(steps, out, resume=False):
        m = tiny_causal_lm(tokenizer, seed=0)
        args = RLOOArgs(steps=steps, lr=0.05, optimizer="sgd", save_every=2, resume=resume, **SHORT)
        train_rloo(m, tokenizer, letters(1.0), corpus[:16], args, output_dir=out, progress=False)
        return m

    full = run(4, tmp_path / "full")
    run(2, tmp_path / "cut")
    resumed = run(4, tmp_path / "cut", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_unknown_optimizer_is_refused(tokenizer, corpus):
    with pytest.raises(ValueError, match="optimizer"):
        train_rloo(tiny_causal_lm(tokenizer), tokenizer, letters(1.0), corpus[:8], RLOOArgs(optimizer="lion"),
                   progress=False)
