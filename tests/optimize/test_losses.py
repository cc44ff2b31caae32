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
