"""The two-annotator-groups experiment: world pieces, MaxMin policy vs the lab's optimizer, end to end."""

from dataclasses import replace

import torch

from rewardlab.lab.experiments import two_groups as tg
from rewardlab.lab.tabular_rl import optimize
from rewardlab.lab.world import WorldConfig, expectation, make_world

SMALL = tg.TwoGroupsConfig(world=replace(WorldConfig(), n_prompts=16, n_candidates=8), n_pairs=600,
                           eval_pairs=400, train_steps=150, rl_steps=60)


def test_group_directions_have_the_asked_cosine():
    w = tg.group_directions(5, -0.6, torch.Generator().manual_seed(0))
    torch.testing.assert_close(w.norm(dim=1), torch.ones(2, dtype=torch.float64))
    assert abs(float(w[0] @ w[1]) + 0.6) < 1e-12


def test_pairs_follow_the_majority_share_and_context_signal():
    world = make_world(SMALL.world, 0)
    gold = torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    pairs, group, ctx = tg.sample_group_pairs(gold, world.policies["pi0"], 4000, 0.7, 0.9, g, gold_labels=True)
    assert abs(float((group == 0).float().mean()) - 0.7) < 0.03
    # context = own group w.p. 0.9 + 0.1·½
    assert abs(float((ctx.argmax(1) == group).float().mean()) - 0.95) < 0.02
    d = gold[group, pairs.prompt, pairs.chosen] - gold[group, pairs.prompt, pairs.rejected]
    assert bool((d >= 0).all()) and bool((pairs.chosen != pairs.rejected).all())


def test_maxmin_with_one_table_is_ordinary_rlhf():
    world = make_world(SMALL.world, 3)
    pi0, table = world.policies["pi0"], world.gold
    ours = tg.maxmin_policy(pi0, table[None], beta=0.05, lr=0.3, steps=25)
    ref = optimize(pi0, table[None], table, beta=0.05, lr=0.3, steps=25, record=[25])
    torch.testing.assert_close(expectation(ours, table), ref.gold[0][0])


def test_maxmin_follows_the_worst_table():
    world = make_world(SMALL.world, 4)
    pi0 = world.policies["pi0"]
    tables = torch.stack([world.gold, -world.gold])   # perfectly opposed: the min can only be held near π₀
    after = tg.maxmin_policy(pi0, tables, beta=0.05, lr=0.3, steps=50)
    one_sided = tg.maxmin_policy(pi0, tables[:1], beta=0.05, lr=0.3, steps=50)
    worst = lambda lg: float(expectation(lg, tables).mean(-1).min())  # noqa: E731
    assert worst(after) > worst(one_sided)


def test_experiment_runs_and_separates_the_rewards():
    res = tg.run(SMALL, [0])
    assert [c.id for c in res.claims] == ["two-groups-mixture", "two-groups-maxmin"]
    acc = res.data["accuracy"]
    assert set(acc) == {"single BT", "mixture (routed)", "mixture (20-pair routing)", "oracle per group",
                        "mixture (best head)"}
    assert all(0.0 <= v[0] <= 1.0 for m in acc.values() for v in m.values())
    # groups conflict: the single RM cannot be right for both; the routed mixture is closer to the oracles
    worst = {m: min(v["A"][0], v["B"][0]) for m, v in acc.items()}
    assert worst["mixture (routed)"] > worst["single BT"]
    assert all(c.verdict in ("reproduced", "inconclusive", "not reproduced") and c.rule for c in res.claims)
    agree = tg.run(replace(SMALL, conflict=0.95), [0])  # near-identical groups: one BT RM serves both
    a = agree.data["accuracy"]["single BT"]
    assert min(a["A"][0], a["B"][0]) > worst["single BT"]


def test_lab_runner_runs_the_experiment_and_draws_its_figure(tmp_path, monkeypatch):
    from rewardlab.lab import runner

    monkeypatch.setitem(runner.PRESETS, "tiny-two-groups", runner.Preset(seeds=2, configs={"two_groups": SMALL}))
    out = runner.run_lab(tmp_path / "lab", preset="tiny-two-groups", only=["two_groups"])
    assert [c["id"] for c in out["claims"]] == ["two-groups-mixture", "two-groups-maxmin"]
    assert (tmp_path / "lab" / "two_groups.png").stat().st_size > 1000
    html = (tmp_path / "lab" / "report.html").read_text()
    assert "Here: With two annotator groups" in html  # the caption states this run's verdicts


def test_label_noise_reaches_the_group_labels():
    """--label-noise flips the groups' labels: the empirical flip rate against each group's gold matches it."""
    world = make_world(SMALL.world, 0)
    g = torch.Generator().manual_seed(1)
    w = tg.group_directions(world.features.shape[-1] - 1, SMALL.conflict, g)
    gold = 50.0 * torch.einsum("pcd,gd->gpc", world.features[..., 1:], w)  # nearly deterministic labels
    rates = []
    for noise in (0.0, 0.3):
        pairs, group, _ = tg.sample_group_pairs(gold, world.policies["pi0"], 20000, 0.7, 1.0,
                                                torch.Generator().manual_seed(2), noise=noise)
        wrong = gold[group, pairs.prompt, pairs.chosen] < gold[group, pairs.prompt, pairs.rejected]
        rates.append(float(wrong.double().mean()))
    assert rates[0] < 0.02 and abs(rates[1] - 0.3) < 0.02
    noisy = tg.run(replace(SMALL, world=replace(SMALL.world, label_noise=0.3)), [0])
    clean = tg.run(SMALL, [0])
    assert noisy.data["accuracy"] != clean.data["accuracy"]
