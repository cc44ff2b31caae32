"""judge: and micro: specs end to end on tiny models: `rewardlab eval`, `rewardlab optimize`, the server."""

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.tiny import tiny_causal_lm, tiny_reward_model
from rewardlab.rewards.judge import JudgeReward
from rewardlab.rewards.personalized import MixtureReward, MixtureRewardModel, save_mixture
from rewardlab.rewards.registry import load_reward


def save_tiny_mixture(tokenizer, out, k: int = 2, seed: int = 6) -> None:
    """An untrained MiCRo checkpoint (k heads, a random router so the weights depend on the prompt) at ``out``."""
    model = MixtureRewardModel(tiny_reward_model(tokenizer, num_outputs=k, seed=seed))
    with torch.no_grad():
        model.router.weight.normal_()
    save_mixture(model, tokenizer, out)


@pytest.fixture(scope="module")
def specs(tmp_path_factory, tokenizer, corpus):
    tmp = tmp_path_factory.mktemp("e2e")
    lm = tiny_causal_lm(tokenizer, seed=5)
    lm.save_pretrained(tmp / "judge_lm")
    tokenizer.save_pretrained(tmp / "judge_lm")
    save_tiny_mixture(tokenizer, tmp / "micro")
    pairs = tmp / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"{corpus[i]} {i}", "chosen": corpus[i + 20],
                                         "rejected": corpus[i + 40], "subset": "alice" if i % 2 else "bob"}) + "\n"
                             for i in range(12)))
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:6]))
    return tmp, {"judge": f"judge:{tmp / 'judge_lm'}:pairwise", "pointwise": f"judge:{tmp / 'judge_lm'}:pointwise",
                 "micro": f"micro:{tmp / 'micro'}"}


def invoke(*args):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_specs_build_the_rewards(specs):
    _, s = specs
    assert isinstance(load_reward(s["judge"]), JudgeReward)
    assert load_reward(s["pointwise"]).config.mode == "pointwise"
    assert isinstance(load_reward(s["micro"]), MixtureReward)
    from rewardlab.errors import UserError

    for bad in ("judge:/no/such/dir", f"{s['judge']}:verdict=guess", f"{s['judge']}:colour=red", "judge:"):
        with pytest.raises(UserError):
            load_reward(bad)


def test_eval_with_a_pairwise_judge_matches_its_own_comparisons(specs):
    tmp, s = specs
    invoke("eval", s["judge"], "--data", str(tmp / "pairs.jsonl"), "-o", str(tmp / "eval_judge"))
    out = json.loads((tmp / "eval_judge" / "metrics.json").read_text())
    metrics = out["models"][out["main"]]
    rows = [json.loads(x) for x in (tmp / "pairs.jsonl").read_text().splitlines()]
    v = load_reward(s["judge"]).compare([r["prompt"] for r in rows], [r["chosen"] for r in rows],
                                        [r["rejected"] for r in rows])
    # each prompt's two responses form a group: r(chosen) = P(c ≻ r), r(rejected) = 1 − P, so Δ = 2P − 1
    assert metrics["pairs"]["accuracy"] == pytest.approx(float((v.p > 0.5).float().mean()))
    assert metrics["pairs"]["mean_margin"] == pytest.approx(float((2 * v.p - 1).mean()), abs=1e-6)


def test_eval_with_a_mixture_reports_per_group_accuracy(specs):
    tmp, s = specs
    invoke("eval", s["micro"], "--data", str(tmp / "pairs.jsonl"), "-o", str(tmp / "eval_micro"))
    out = json.loads((tmp / "eval_micro" / "metrics.json").read_text())
    metrics = out["models"][out["main"]]
    assert set(metrics["pairs"]["subsets"]) == {"alice", "bob"}


@pytest.mark.parametrize("kind", ["pointwise", "judge", "micro"])
def test_optimize_against_judge_and_mixture(specs, kind):
    tmp, s = specs
    common = ["--policy", "tiny", "--prompts", str(tmp / "prompts.jsonl"), "--reward", s[kind],
              "--max-new-tokens", "6"]
    invoke("optimize", "bon", *common, "-o", str(tmp / f"bon_{kind}"), "--n", "4", "--max-prompts", "3")
    assert [r["n"] for r in json.loads((tmp / f"bon_{kind}" / "summary.json").read_text())["table"]] == [1, 2, 4]
    invoke("optimize", "rloo", *common, "-o", str(tmp / f"rloo_{kind}"), "--steps", "1", "--k", "2",
           "--eval-prompts", "2")
    assert (tmp / f"rloo_{kind}" / "summary.json").exists()


def test_served_judge_and_mixture_answer_like_offline(specs):
    from fastapi.testclient import TestClient

    from rewardlab.serve.app import create_app

    _, s = specs
    prompts, responses = ["the cat", "the cat", "a dog"], ["sat on a mat", "ran", "big red"]
    for spec in (s["pointwise"], s["micro"]):
        reward = load_reward(spec)
        offline = reward.score(prompts, responses)
        with TestClient(create_app(reward)) as c:
            body = c.post("/v1/score", json={"items": [{"prompt": p, "response": r}
                                                       for p, r in zip(prompts, responses)]}).json()
        assert body["scores"] == pytest.approx(offline.tolist(), abs=1e-5)


def test_judge_and_mixture_train_commands(specs):
    tmp, s = specs
    res = invoke("judge", s["judge"], "--data", str(tmp / "pairs.jsonl"), "-o", str(tmp / "judge.json"))
    out = json.loads((tmp / "judge.json").read_text())
    assert out["pairs"] == 12 and out["pairs_both_orders"] == 12 and 0.0 <= out["swap_consistency"] <= 1.0
    assert out["backend"]["prompts"] == 24 and '"accuracy"' in res.output
    invoke("mixture-train", "--data", str(tmp / "pairs.jsonl"), "-o", str(tmp / "trained"), "--k", "2",
           "--epochs", "1", "--batch-size", "6", "--max-length", "64")
    r = load_reward(f"micro:{tmp / 'trained'}")
    assert isinstance(r, MixtureReward) and r.model.k == 2 and r.score(["a"], ["b"]).shape == (1,)


def test_teachers_ranks_judges_and_mixtures(specs, tmp_path):
    """`rewardlab teachers` takes judge: (pairwise and pointwise) and micro: specs like any other reward."""
    tmp, s = specs
    out = tmp_path / "teachers"
    args = ["teachers", "--policy", str(tmp / "judge_lm"), "--prompts", str(tmp / "prompts.jsonl"), "--data",
            str(tmp / "pairs.jsonl"), "-m", "2", "--max-new-tokens", "4", "--probe-steps", "0", "-o", str(out)]
    for spec in s.values():
        args += ["--reward", spec]
    invoke(*args)
    doc = json.loads((out / "teachers.json").read_text())
    assert {r["reward"] for r in doc["verdict"]["ranking"]} == set(s.values())
    assert all(doc["rewards"][spec]["metrics"]["accuracy"] is not None for spec in s.values())
