"""Mixture of BT heads with a context router (MiCRo-style), MaxMin helpers, checkpoints and spec loading."""

import math

import pytest
import torch

from rewardlab.data.records import PreferencePair
from rewardlab.models.mixture import MixtureRewardModel
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.rewards.personalized import MixtureReward, load_mixture, save_mixture
from rewardlab.rewards.registry import load_reward
from rewardlab.train.losses import balance_penalty, bt_loss, maxmin_weights, mixture_bt_loss, mixture_probability
from rewardlab.train.mixture import MixtureConfig, fit_group_weights, train_mixture


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_mixture_loss_by_hand_and_k1_is_bt():
    delta = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    router = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # weights [1/4, 3/4] and [1/2, 1/2]
    expect = [-math.log(0.25 * sig(1) + 0.75 * sig(-1)), -math.log(0.5 * sig(2) + 0.5 * sig(0.5))]
    torch.testing.assert_close(mixture_bt_loss(delta, router), torch.tensor(expect))
    torch.testing.assert_close(mixture_probability(delta, torch.softmax(router, -1)),
                               torch.tensor([math.exp(-e) for e in expect]))
    d1 = torch.tensor([[0.3], [-2.0], [40.0]])
    torch.testing.assert_close(mixture_bt_loss(d1, torch.zeros(3, 1)), bt_loss(d1[:, 0], torch.zeros(3)))
    shared = mixture_bt_loss(delta, torch.tensor([0.0, math.log(3.0)]))  # one router for all rows
    torch.testing.assert_close(shared[0], torch.tensor(expect[0]))


def test_balance_penalty_and_maxmin_weights():
    assert balance_penalty(torch.zeros(4, 3)).item() == pytest.approx(0.0, abs=1e-7)
    # mean routing [1/4, 3/4]: KL to uniform = 1/4 ln(1/2) + 3/4 ln(3/2)
    got = balance_penalty(torch.tensor([[0.0, math.log(3.0)]] * 2)).item()
    assert got == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert maxmin_weights(torch.tensor([0.3, -0.2, 0.1])).tolist() == [0.0, 1.0, 0.0]
    soft = maxmin_weights(torch.tensor([0.0, math.log(2.0)]), temperature=1.0)  # softmax(-J): [2/3, 1/3]
    torch.testing.assert_close(soft, torch.tensor([2 / 3, 1 / 3]))


def test_fit_group_weights_finds_the_head_that_explains_the_group():
    g = torch.Generator().manual_seed(0)
    agree = torch.rand(40, generator=g) * 3 + 0.5          # head 0 orders this group's pairs right
    delta = torch.stack([agree, -agree + 0.2 * torch.randn(40, generator=g)], 1)
    w = fit_group_weights(delta)
    assert w[0] > 0.95 and torch.isclose(w.sum(), torch.tensor(1.0))


def _pairs(n=24):
    out = []
    for i in range(n):
        who = "alice" if i % 2 == 0 else "bob"
        a, b = "yes good answer", "no bad"
        c, r = (a, b) if who == "alice" else (b, a)
        out.append(PreferencePair(f"{who}: question {i % 5}", c, r, subset=who))
    return out


def test_router_aggregate_is_the_weighted_heads_and_checkpoints_round_trip(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = MixtureRewardModel(tiny_reward_model(tokenizer, num_outputs=3, seed=4))
    with torch.no_grad():
        model.router.weight.normal_()
    reward = MixtureReward(model, tokenizer)
    prompts = ["alice: hi", "bob: hello there", [{"role": "user", "content": "alice: a chat"}]]
    responses = ["yes good", "no", "maybe one two"]
    heads, w = reward.score_heads(prompts, responses), reward.route(prompts)
    assert heads.shape == (3, 3) and torch.allclose(w.sum(-1), torch.ones(3))
    assert not torch.allclose(w[0], w[1])  # the router reads the context
    torch.testing.assert_close(reward.score(prompts, responses), (w * heads).sum(-1))
    torch.testing.assert_close(MixtureReward(model, tokenizer, "min").score(prompts, responses), heads.min(-1).values)
    torch.testing.assert_close(MixtureReward(model, tokenizer, 2).score(prompts, responses), heads[:, 2])
    alone = torch.cat([reward.score([p], [r]) for p, r in zip(prompts, responses)])
    torch.testing.assert_close(alone, reward.score(prompts, responses), atol=1e-5, rtol=1e-5)

    save_mixture(model, tokenizer, tmp_path / "micro", MixtureConfig(k=3))
    loaded, _, manifest = load_mixture(tmp_path / "micro")
    assert manifest["personalized"]["k"] == 3
    for spec, expect in [(f"micro:{tmp_path / 'micro'}", reward.score(prompts, responses)),
                         (str(tmp_path / "micro"), reward.score(prompts, responses)),
                         (f"micro:{tmp_path / 'micro'}:mean", heads.mean(-1)),
                         (f"micro:{tmp_path / 'micro'}:head=1", heads[:, 1])]:
        r = load_reward(spec)
        assert isinstance(r, MixtureReward)
        torch.testing.assert_close(r.score(prompts, responses), expect, atol=1e-5, rtol=1e-5)
    from rewardlab.errors import UserError

    with pytest.raises(UserError):
        load_reward(f"micro:{tmp_path / 'micro'}:head=7")
    with pytest.raises(UserError):
        load_reward(f"micro:{tmp_path / 'nope'}")


def test_training_lowers_the_mixture_loss(tokenizer):
    pairs = _pairs()
    model = MixtureRewardModel(tiny_reward_model(tokenizer, num_outputs=2, seed=0))
    hist = train_mixture(model, tokenizer, pairs, MixtureConfig(k=2, epochs=6, batch_size=12, lr=3e-3),
                         progress=False)
    assert len(hist) == 6 and hist[-1] < hist[0]
