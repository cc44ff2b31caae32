import math

import pytest
import torch

from rewardlab.optimize.losses import (
    dpo_loss,
    grpo_advantages,
    kl_penalized_rewards,
    ppo_clip_loss,
    reinforce_loss,
    rloo_advantages,
)


def test_rloo_advantages_by_hand():
    r = torch.tensor([[1.0, 2.0, 6.0], [3.0, 5.0, 4.0]])
    # leave-one-out means: (2+6)/2=4, (1+6)/2=3.5, (1+2)/2=1.5 ; (5+4)/2=4.5, 3.5, 4
    expect = torch.tensor([[-3.0, -1.5, 4.5], [-1.5, 1.5, 0.0]])
    assert torch.allclose(rloo_advantages(r), expect)
    assert torch.allclose(rloo_advantages(torch.tensor([[1.0, 3.0]])), torch.tensor([[-2.0, 2.0]]))
    with pytest.raises(ValueError):
        rloo_advantages(torch.ones(2, 1))


def test_grpo_advantages_by_hand():
    a = grpo_advantages(torch.tensor([[1.0, 2.0, 6.0]]), eps=0.0)
    # mean 3, unbiased var (4 + 1 + 9) / 2 = 7
    assert torch.allclose(a, torch.tensor([[-2.0, -1.0, 3.0]]) / math.sqrt(7))
    assert torch.equal(grpo_advantages(torch.full((1, 4), 2.5)), torch.zeros(1, 4))


def test_kl_penalized_rewards():
    assert torch.allclose(kl_penalized_rewards(torch.tensor([1.0, 2.0]), torch.tensor([4.0, -2.0]), 0.05),
                          torch.tensor([0.8, 2.1]))


def test_reinforce_loss_value_and_gradient():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, 0.3]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss = reinforce_loss(logps, mask, adv)
    assert loss.item() == pytest.approx(-(2 * -3.0 + -1 * -0.5) / 2)
    loss.backward()
    assert torch.allclose(logps.grad, torch.tensor([[-1.0, -1.0], [0.5, 0.0]]))


def test_ppo_clip_by_hand():
    old = torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    logps = torch.zeros(2, 2, requires_grad=True)
    loss = ppo_clip_loss(logps, old, mask, torch.tensor([1.0, -2.0]))
    assert loss.item() == pytest.approx(-(1 + 1 - 2) / 3)  # ratio 1: -mean of token advantages
    # ratio 1.5 is clipped to 1.2 for a positive advantage (no gradient), kept at 1.5 for a negative one
    logps = torch.full((2, 2), math.log(1.5), requires_grad=True)
    loss = ppo_clip_loss(logps, old, mask, torch.tensor([1.0, -1.0]), clip_eps=0.2)
    assert loss.item() == pytest.approx(-(1.2 + 1.2 - 1.5) / 3)
    loss.backward()
    assert torch.allclose(logps.grad, torch.tensor([[0.0, 0.0], [1.5 / 3, 0.0]]))


def test_dpo_loss_by_hand():
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]), beta=0.1)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.1)))  # margin 1, -log sigmoid(0.1)
    chosen = torch.tensor([-1.0], requires_grad=True)
    dpo_loss(chosen, torch.tensor([-1.0]), torch.tensor([-1.0]), torch.tensor([-1.0]), beta=0.5).sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.5 * 0.5)  # -beta * sigmoid(-0)


def test_kl_k3_by_hand():
    from rewardlab.optimize.losses import kl_k3

    logps = torch.tensor([[math.log(0.5), math.log(0.2)]], requires_grad=True)
    ref = torch.tensor([[math.log(0.25), math.log(0.2)]])
    mask = torch.tensor([[1.0, 1.0]])
    # token 1: q - p = log 0.5 -> 0.5 - log 0.5 - 1 ; token 2: 0
    expect = (0.5 - math.log(0.5) - 1) / 2
    assert kl_k3(logps, ref, mask).item() == pytest.approx(expect)
    assert kl_k3(ref.clone(), ref, mask).item() == 0.0


def test_sft_loss_by_hand():
    from rewardlab.optimize.losses import sft_loss

    logps = torch.tensor([[-1.0, -3.0], [-2.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert sft_loss(logps, mask).item() == pytest.approx(6.0 / 3)


# -- GRPO: token-mean policy and KL terms (Shao et al. 2024, eq. 3) ----------------------------------------------------

def _uniform_batch(lengths, T, logp=-0.5, ref=-0.7):
    """Sequences whose every real token has log π = ``logp`` and log π_ref = ``ref``, right-padded to T."""
    mask = torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths])
    return torch.full((len(lengths), T), logp, requires_grad=True), torch.full((len(lengths), T), ref), mask


def test_grpo_loss_by_hand_and_independent_of_length():
    from rewardlab.optimize.losses import grpo_loss

    adv, beta = torch.tensor([1.0, 0.5]), 0.04
    k3 = math.exp(-0.2) + 0.2 - 1  # d = log π_ref − log π = −0.2 on every token
    policy_term = -(1.0 * -0.5 + 0.5 * -0.5) / 2  # −(1/b) Σ_i A_i · mean_t log π = 0.375
    for lengths, T in [((4, 4), 4), ((32, 32), 32), ((32, 4), 32), ((1, 3), 5)]:
        logps, ref, mask = _uniform_batch(lengths, T)
        assert grpo_loss(logps, mask, adv, ref, beta).item() == pytest.approx(policy_term + beta * k3, rel=1e-6)
        assert grpo_loss(logps, mask, adv, ref, 0.0).item() == pytest.approx(policy_term, rel=1e-6)
        assert grpo_loss(logps, mask, torch.zeros(2), ref, beta).item() == pytest.approx(beta * k3, rel=1e-6)


def test_grpo_kl_to_policy_gradient_ratio_does_not_depend_on_length():
    """β must weigh the KL against the policy term the same at 4 and at 32 tokens (a sequence-sum policy term with a
    token-mean KL makes the ratio shrink 8x from 4 to 32 tokens)."""
    from rewardlab.optimize.losses import grpo_loss

    ratios = []
    for T in (4, 32):
        grads = []
        for adv, beta in ((torch.tensor([1.0, 1.0]), 0.0), (torch.zeros(2), 0.04)):
            logps, ref, mask = _uniform_batch((T, T), T)
            grpo_loss(logps, mask, adv, ref, beta).backward()
            grads.append(logps.grad.norm().item())
        ratios.append(grads[1] / grads[0])
    # d/dlogπ of β·k3 = β·(1 − exp(d)) per token; of −A·logπ = −A; both divided by b·T
    assert ratios[0] == pytest.approx(0.04 * (1 - math.exp(-0.2)), rel=1e-5)
    assert ratios[1] == pytest.approx(ratios[0], rel=1e-5)


def test_grpo_clipped_term_has_the_reinforce_gradient_at_ratio_one():
    from rewardlab.optimize.losses import grpo_loss

    torch.manual_seed(0)
    base = torch.randn(3, 5)
    mask = torch.tensor([[1.0] * 5, [1.0] * 2 + [0.0] * 3, [1.0] * 4 + [0.0]])
    adv, ref = torch.tensor([0.7, -1.2, 0.3]), base - 0.1 * torch.randn(3, 5)
    grads = []
    for old in (None, base.clone()):
        logps = base.clone().requires_grad_(True)
        grpo_loss(logps, mask, adv, ref, 0.04, old_logps=old).backward()
        grads.append(logps.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-7)
    assert grads[0][1, 2:].abs().sum() == 0  # padding gets no gradient
    # the clipped term stops the gradient once ρ leaves [1 − ε, 1 + ε] in the advantage's direction
    logps = (base + 0.5).requires_grad_(True)  # ρ = e^0.5 > 1.2
    grpo_loss(logps, mask, torch.tensor([1.0, 1.0, 1.0]), ref, 0.0, old_logps=base).backward()
    assert logps.grad.abs().sum() == 0
