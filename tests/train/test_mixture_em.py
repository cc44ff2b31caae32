"""MaxMin-RLHF's hard EM (train/mixture_em.py): the E-step by hand, the M-step loss against MiCRo's mixture
likelihood with one-hot routing, planted groups recovered on synthetic BT data (a linear reward per group, where the
assignment accuracy is countable), and `rewardlab mixture-train --user-field / --group-field` on text."""

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from rewardlab.data.records import PreferencePair
from rewardlab.models.mixture import MixtureEncoder, MixtureRewardModel
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.train.losses import mixture_bt_loss
from rewardlab.train.mixture import MixtureConfig
from rewardlab.train.mixture_em import AssignedObjective, e_step, hard_em, unit_loglik


def test_unit_loglik_and_e_step_by_hand():
    pair = torch.tensor([[-0.1, -2.0], [-0.5, -0.2], [-3.0, -0.1], [-0.2, -0.3]], dtype=torch.float64)
    L = unit_loglik(pair, torch.tensor([0, 0, 1, 1]), 2)
    # unit 0: pairs 0, 1 -> [-0.6, -2.2]; unit 1: pairs 2, 3 -> [-3.2, -0.4]
    torch.testing.assert_close(L, torch.tensor([[-0.6, -2.2], [-3.2, -0.4]], dtype=torch.float64))
    assert e_step(L).tolist() == [0, 1]
    # every unit prefers group 0; the empty group 1 takes the unit group 0 explains worst (own log-lik -5)
    both = torch.tensor([[-1.0, -4.0], [-5.0, -6.0], [-2.0, -3.0]])
    assert e_step(both).tolist() == [0, 1, 0]


def test_m_step_loss_is_the_mixture_likelihood_with_one_hot_routing(tokenizer):
    pairs = [PreferencePair("q", " a b", " c"), PreferencePair("q", " d", " e f"), PreferencePair("r", " a", " f")]
    model = MixtureRewardModel(tiny_reward_model(tokenizer, num_outputs=2, seed=0))
    obj = AssignedObjective(MixtureEncoder(tokenizer, 64), pairs, MixtureConfig(k=2))
    obj.group = torch.tensor([1, 0, 1])
    got, _ = obj.loss(model, [0, 1, 2], "cpu")
    delta = obj.margins(model)
    one_hot = torch.log(F.one_hot(obj.group, 2).float().clamp_min(1e-30))  # log 0 -> -69: weight e^-69
    torch.testing.assert_close(got, mixture_bt_loss(delta, one_hot).mean(), rtol=1e-5, atol=1e-6)
    # and by hand: -mean_i log σ(Δ_{i, g(i)})
    by_hand = -sum(math.log(1 / (1 + math.exp(-float(delta[i, g])))) for i, g in enumerate([1, 0, 1])) / 3
    assert got.item() == pytest.approx(by_hand, rel=1e-5)


def planted(users_a: int = 10, users_b: int = 5, per_user: int = 20, seed: int = 0):
    """Pairs of feature differences d (chosen − rejected), labelled by BT with a group's weights: group A
    w = (2, 0), group B w = (−2, 1). Returns (d [n, 2], unit per pair, true group per unit)."""
    g = torch.Generator().manual_seed(seed)
    truth = {"A": torch.tensor([2.0, 0.0]), "B": torch.tensor([-2.0, 1.0])}
    ds, units, groups = [], [], []
    for u in range(users_a + users_b):
        grp = "A" if u < users_a else "B"
        groups.append(grp)
        d = torch.randn(per_user, 2, generator=g)
        prefer_first = torch.rand(per_user, generator=g) < torch.sigmoid(d @ truth[grp])
        ds.append(torch.where(prefer_first[:, None], d, -d))  # the chosen response first
        units += [f"user{u}"] * per_user
    return torch.cat(ds), units, groups


def test_hard_em_recovers_two_planted_groups():
    d, units, truth = planted()
    w = torch.randn(2, 2, generator=torch.Generator().manual_seed(1))  # K = 2 linear rewards, random start

    def pair_loglik():
        return F.logsigmoid(d @ w.T)

    def fit(x):  # one group's logistic regression (BT with a linear reward), by LBFGS
        wk = torch.zeros(2, requires_grad=True)
        opt = torch.optim.LBFGS([wk], max_iter=100)

        def closure():
            opt.zero_grad()
            loss = -F.logsigmoid(x @ wk).mean() + 1e-3 * wk.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        return wk.detach()

    def m_step(group_of_pair):
        for k in range(2):
            w[k] = fit(d[group_of_pair == k])

    res = hard_em(units, 2, pair_loglik, m_step, rounds=10)
    assert res.converged and res.units == [f"user{u}" for u in range(15)]
    # accuracy up to a relabelling of the groups: count matches both ways
    hits = sum((g == 0) == (t == "A") for g, t in zip(res.assignment, truth))
    accuracy = max(hits, len(truth) - hits) / len(truth)
    assert accuracy == 1.0
    a_head = res.assignment[0]
    cos = F.cosine_similarity(w, torch.stack([torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 1.0])]))
    assert (cos if a_head == 0 else cos.flip(0)).min() > 0.9  # each head points along its group's weights
    assert res.history[-1]["sizes"] == sorted([10, 5], reverse=a_head == 0)


def pets(path, seed=0):
    """Users u0-u4 (group A) prefer cats to dogs, u5-u7 (group B) the reverse, on the same kind of pairs."""
    rng = random.Random(seed)
    rows = []
    for u in range(8):
        grp = "A" if u < 5 else "B"
        like, other = ("cats", "dogs") if grp == "A" else ("dogs", "cats")
        for i in range(12):
            a = rng.choice(["small", "big", "quiet", "happy", "old", "young"])
            rows.append({"prompt": f"Which pet, question {i}?", "chosen": f" I like {a} {like}.",
                         "rejected": f" I like {a} {other}.", "annotator": f"u{u}", "group": grp})
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mixture_train_em_recovers_the_annotator_groups(tmp_path, cli):
    data = pets(tmp_path / "pets.jsonl")
    code, out, err = cli("mixture-train", "--data", data, "-o", tmp_path / "em", "--user-field", "annotator",
                         "--epochs", "2", "--rounds", "4")
    assert code == 0, err
    report = json.loads((tmp_path / "em" / "groups.json").read_text())
    a = {report["assignment"][f"u{u}"] for u in range(5)}
    b = {report["assignment"][f"u{u}"] for u in range(5, 8)}
    assert len(a) == 1 and len(b) == 1 and a != b  # 8 of 8 annotators in their planted group
    assert report["rounds"][-1]["pairs"][a.pop()] == 60 and "hard EM" in out

    from rewardlab.rewards.registry import load_reward
    mix = load_reward(f"micro:{tmp_path / 'em'}")
    heads = mix.score_heads(["Which pet?"] * 2, [" I like big cats.", " I like big dogs."])
    cats_head = report["assignment"]["u0"]
    assert heads[0, cats_head] > heads[1, cats_head] and heads[1, 1 - cats_head] > heads[0, 1 - cats_head]


def test_mixture_train_given_groups_and_bad_fields(tmp_path, cli):
    data = pets(tmp_path / "pets.jsonl")
    code, out, err = cli("mixture-train", "--data", data, "-o", tmp_path / "g", "--group-field", "group",
                         "--epochs", "2")
    assert code == 0, err
    report = json.loads((tmp_path / "g" / "groups.json").read_text())
    assert report["groups"] == ["A", "B"] and report["rounds"][0]["pairs"] == [60, 36]
    code, _, err = cli("mixture-train", "--data", data, "-o", tmp_path / "x", "--user-field", "who")
    assert code == 2 and f"{data}:1: who: missing" in err and not (tmp_path / "x").exists()
