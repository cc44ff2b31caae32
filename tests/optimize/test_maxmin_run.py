"""`rewardlab optimize rloo --reward maxmin:...` on a tiny policy: each train row logs the groups' batch means and
the group the step optimized (the argmin), and a `maxmin=raw:` gold tracks each group's gold, its worst-group mean
being the min of the group means (the identity MaxMin-RLHF's objective is)."""

import json

import pytest


def test_rloo_optimizes_the_worst_group_and_tracks_each_groups_gold(setup, cli):
    tmp, common = setup
    args = list(common)
    args[args.index("--reward") + 1] = "maxmin:python:cli_rewards_mod:letters,python:cli_rewards_mod:vowels"
    args[args.index("--gold") + 1] = "maxmin=raw:python:cli_rewards_mod:vowels,python:cli_rewards_mod:letters"
    code, out, err = cli("optimize", "rloo", *args, "-o", tmp / "mm", "--steps", "3", "--k", "2",
                         "--prompts-per-step", "4", "--eval-every", "1")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp / "mm" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert len(train) == 3 and len(evals) == 4
    for r in train:
        means = [r["reward_group_0"], r["reward_group_1"]]
        assert r["reward_worst_group"] == means.index(min(means))
        assert r["reward_mean"] == pytest.approx(min(means), abs=1e-6)  # the step's reward is the worst group's
    for r in evals:
        gold = [r["gold_group_0"], r["gold_group_1"]]
        assert r["gold_mean"] == pytest.approx(min(gold), abs=1e-6) and r["gold_worst_group"] == gold.index(min(gold))
        assert r["proxy_mean"] == pytest.approx(min(r["proxy_group_0"], r["proxy_group_1"]), abs=1e-6)
