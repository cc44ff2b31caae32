import math

import pytest
import torch

from rewardlab.train.losses import bt_loss, pairwise_correct


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_bt_plain_matches_hand_value():
    # r_c = 2, r_r = 0.5 -> Δ = 1.5, L = -log σ(1.5) = log(1 + e^-1.5) = 0.2014133
    loss = bt_loss(torch.tensor([2.0]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.5)), abs=1e-6)
    assert loss.item() == pytest.approx(0.2014133, abs=1e-6)


def test_bt_margin_shifts_delta():
    # Δ = 1 - 0 - 2 = -1 -> L = log(1 + e) = 1.3132617
    loss = bt_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=torch.tensor([2.0]))
    assert loss.item() == pytest.approx(1.3132617, abs=1e-6)


def test_bt_centering_adds_squared_sum():
    # Δ = 1 -> -log σ(1) = 0.3132617 ; centering 0.01 * (3 + 2)^2 = 0.25
    loss = bt_loss(torch.tensor([3.0]), torch.tensor([2.0]), centering=0.01)
    assert loss.item() == pytest.approx(0.3132617 + 0.25, abs=1e-6)


def test_bt_label_smoothing():
    # ε = 0.1, Δ = 2: 0.9 * -log σ(2) + 0.1 * -log σ(-2)
    expected = 0.9 * -math.log(sig(2)) + 0.1 * -math.log(sig(-2))
    loss = bt_loss(torch.tensor([2.0]), torch.tensor([0.0]), label_smoothing=0.1)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.9 * 0.126928 + 0.1 * 2.126928, abs=1e-5)


def test_bt_gradient_sign_and_value():
    rc, rr = torch.tensor([0.0], requires_grad=True), torch.tensor([0.0], requires_grad=True)
    bt_loss(rc, rr).sum().backward()
    assert rc.grad.item() == pytest.approx(-0.5) and rr.grad.item() == pytest.approx(0.5)  # dL/dΔ = -(1 - σ(0))


def test_pairwise_correct_ties_are_wrong():
    assert pairwise_correct(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 2.0])).tolist() == [1, 0, 0]
