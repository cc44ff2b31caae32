"""Every reward family of issue 8 through the three consumers: `rewardlab eval`, `rewardlab optimize`, the server."""

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.rewards.registry import load_reward
from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.train.config import ArmoConfig
from rewardlab.train.dpo import DPOConfig, train_dpo
from rewardlab.train.multiobjective import train_armo

from .test_multiobjective import synthetic


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data files and a mixture (rules only); model checkpoints are built on demand by ``checkpoints``."""
    tmp = tmp_path_factory.mktemp("families")
    rated, pairs = synthetic(40, 40, seed=3)
    (tmp / "pairs.jsonl").write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen,
                                                         "rejected": p.rejected}) + "\n" for p in pairs))
    (tmp / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p.prompt}) + "\n" for p in pairs[:6]))
    (tmp / "mix.yaml").write_text("sum:\n  - {reward: 'rule:regex:good', weight: 1.0}\n"
                                  "  - {reward: 'rule:length:6', weight: 2.0}\n"
                                  "constraints:\n  - {name: no-bad, reward: 'rule:regex:^((?!bad).)*$'}\n")
    return tmp, rated, pairs


@pytest.fixture(scope="module")
def checkpoints(world):
    tmp, rated, pairs = world
    train_armo(rated, pairs, ArmoConfig(output=str(tmp / "armo"), verbosity="verbosity", epochs=3, max_length=64))
    train_dpo(pairs, DPOConfig(output=str(tmp / "dpo"), max_steps=2, batch_size=8, max_length=64), progress=False)
    return tmp


SLOW = pytest.mark.slow  # a checkpoint to train, plus the report's figures: ~5-15 s each on a busy 2-core box


@pytest.mark.parametrize("family", [pytest.param("dpo", marks=SLOW), pytest.param("armo", marks=SLOW),
                                    pytest.param("dpa", marks=SLOW), "mix", "rule"])
def test_eval_optimize_and_serve(world, family, request):
    tmp, _, pairs = world
    if family in ("dpo", "armo", "dpa"):
        request.getfixturevalue("checkpoints")
    spec = {"dpo": str(tmp / "dpo"), "armo": f"armo:{tmp / 'armo'}", "dpa": f"dpa:{tmp / 'armo'}:1,-0.5",
            "mix": f"mix:{tmp / 'mix.yaml'}", "rule": "rule:regex:good"}[family]
    reward = load_reward(spec)
    prompts = [p.prompt for p in pairs[:8]]
    responses = [p.chosen for p in pairs[:8]]
    offline = reward.score(prompts, responses)
    assert offline.shape == (8,)

    out = tmp / f"eval-{family}"
    res = CliRunner().invoke(app, ["eval", spec, "--data", str(tmp / "pairs.jsonl"), "-o", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    s = load_reward(spec).score(*zip(*[(p.prompt, x) for p in pairs for x in (p.chosen, p.rejected)]))
    acc = float((s[0::2] > s[1::2]).float().mean())
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["models"][doc["main"]]["summary"]["accuracy"] == pytest.approx(acc)

    res = CliRunner().invoke(app, ["optimize", "bon", "--policy", "tiny", "--reward", spec, "--prompts",
                                   str(tmp / "prompts.jsonl"), "--n", "2", "--max-new-tokens", "4",
                                   "-o", str(tmp / f"bon-{family}")])
    assert res.exit_code == 0, (res.output, res.exception)
    assert (tmp / f"bon-{family}" / "summary.json").exists()

    with TestClient(create_app(load_reward(spec), ServeConfig()), raise_server_exceptions=False) as client:
        body = client.post("/v1/score", json={"items": [{"prompt": p, "response": r}
                                                        for p, r in zip(prompts, responses)]})
        assert body.status_code == 200, body.text
        assert body.json()["scores"] == pytest.approx(offline.tolist(), abs=1e-5)
