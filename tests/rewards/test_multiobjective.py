import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair, RatedRow
from rewardlab.errors import UserError
from rewardlab.rewards.model import ModelReward
from rewardlab.rewards.multiobjective import (
    ArmoReward,
    DirectionalReward,
    dpa_score,
    parse_direction,
    rotation_rankings,
)
from rewardlab.rewards.registry import load_reward
from rewardlab.train.config import ArmoConfig
from rewardlab.train.multiobjective import train_armo


def test_dpa_direction_rotation_changes_the_ranking():
    # A is more helpful, B is more verbose: (helpfulness, verbosity)
    scores = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    assert dpa_score(scores, [3.0, 0.0]).tolist() == [1.0, 0.5]  # the direction is normalized
    ranks = rotation_rankings(scores, 0, 1, [0, 20, 30, 90])
    # v(θ)·A = cos θ, v(θ)·B = 0.5 cos θ + sin θ: B wins once tan θ > 0.5 (θ > 26.57°)
    assert ranks == [[0, 1], [0, 1], [1, 0], [1, 0]]
    assert parse_direction("helpfulness=0.8, verbosity=-0.6") == {"helpfulness": 0.8, "verbosity": -0.6}
    assert parse_direction("1,2") == [1.0, 2.0]
    with pytest.raises(ValueError):
        dpa_score(scores, [0.0, 0.0])


WORDS = "good great fine bad poor the a cat dog sat mat on it".split()


def synthetic(n_rated=80, n_pairs=60, seed=0):
    """helpfulness = #good-ish words; verbosity = #words; preference = helpfulness − 0.3·verbosity."""
    rng = random.Random(seed)

    def resp():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 10)))

    def help_(t):
        words = t.split()
        return float(sum(w in ("good", "great", "fine") for w in words) - sum(w in ("bad", "poor") for w in words))

    rated = []
    for _ in range(n_rated):
        p, y = resp(), resp()
        rated.append(RatedRow(p, y, {"helpfulness": help_(y), "verbosity": float(len(y.split()))}))
    pairs = []
    while len(pairs) < n_pairs:
        p, a, b = resp(), resp(), resp()
        ua, ub = help_(a) - 0.3 * len(a.split()), help_(b) - 0.3 * len(b.split())
        if ua != ub:
            pairs.append(PreferencePair(p, a, b) if ua > ub else PreferencePair(p, b, a))
    return rated, pairs


@pytest.fixture(scope="module")
def armo_dir(tmp_path_factory):
    rated, pairs = synthetic()
    out = tmp_path_factory.mktemp("armo") / "armo"
    summary = train_armo(rated, pairs, ArmoConfig(output=str(out), verbosity="verbosity", ridge=0.1, epochs=30,
                                                  max_length=64))
    return out, summary, rated, pairs


def test_trained_armo_round_trip_matches_hand_composition(armo_dir):
    out, summary, rated, pairs = armo_dir
    assert summary["attributes"] == ["helpfulness", "verbosity"]
    reward = load_reward(str(out))
    assert isinstance(reward, ArmoReward) and isinstance(load_reward(f"armo:{out}"), ArmoReward)
    prompts, responses = [p.prompt for p in pairs[:6]], [p.chosen for p in pairs[:6]]
    info = reward.inspect(prompts, responses)
    # the checkpoint's k-output head is the regression: a plain ModelReward gives the raw attribute scores
    raw = ModelReward.from_pretrained(out).score(prompts, responses)
    torch.testing.assert_close(info["attributes"], raw, atol=1e-5, rtol=1e-5)
    lam = torch.tensor(summary["decorrelation"])
    dec = raw - lam[None, :] * raw[:, 1:2]
    g = info["gate"]
    assert (g >= 0).all() and torch.allclose(g.sum(-1), torch.ones(6))
    torch.testing.assert_close(reward.score(prompts, responses), info["beta"] * (g * dec).sum(-1),
                               atol=1e-5, rtol=1e-5)
    # same prompt → same gate weights, whatever the response
    same = reward.inspect([prompts[0]] * 2, responses[:2])["gate"]
    torch.testing.assert_close(same[0], same[1])
    assert summary["metrics"]["train_accuracy"] > 0.5


def test_dpa_spec_over_armo_and_kout_checkpoints(armo_dir):
    out, _, _, pairs = armo_dir
    prompts, responses = [p.prompt for p in pairs[:4]], [p.rejected for p in pairs[:4]]
    raw = load_reward(f"armo:{out}").attributes(prompts, responses)
    for spec in (f"dpa:{out}:helpfulness=3,verbosity=-4", f"dpa:{out}:0.6,-0.8"):
        torch.testing.assert_close(load_reward(spec).score(prompts, responses), raw @ torch.tensor([0.6, -0.8]),
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError):
        load_reward(f"dpa:{out}:nope=1")
    with pytest.raises(UserError):
        DirectionalReward(load_reward(f"armo:{out}"), [1.0, 0.0, 0.0])


def test_cli_train_armo_and_inspect(tmp_path):
    rated, pairs = synthetic(40, 30, seed=1)
    (tmp_path / "rated.jsonl").write_text("".join(json.dumps({"prompt": r.prompt, "response": r.response,
                                                              "attributes": r.attributes}) + "\n" for r in rated))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen,
                                                              "rejected": p.rejected}) + "\n" for p in pairs))
    out = tmp_path / "armo"
    res = CliRunner().invoke(app, ["train", "--objective", "armo", "--data", str(tmp_path / "pairs.jsonl"), "--rated",
                                   str(tmp_path / "rated.jsonl"), "--verbosity", "verbosity", "--output", str(out),
                                   "--epochs", "5", "--max-length", "64"])
    assert res.exit_code == 0, (res.output, res.exception)
    res = CliRunner().invoke(app, ["inspect", str(out), str(tmp_path / "rated.jsonl"), "-o", str(tmp_path / "i.jsonl"),
                                   "--rotate", "helpfulness,verbosity", "--angles", "4"])
    assert res.exit_code == 0, (res.output, res.exception)
    rows = [json.loads(x) for x in (tmp_path / "i.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and set(rows[0]["gate"]) == {"helpfulness", "verbosity"}
    assert sum(rows[0]["gate"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "rotation" in res.output


def test_server_inspect_endpoint(armo_dir):
    from fastapi.testclient import TestClient

    from rewardlab.serve.app import ServeConfig, create_app

    out, _, _, pairs = armo_dir
    reward = load_reward(str(out))
    prompts, responses = [p.prompt for p in pairs[:3]], [p.chosen for p in pairs[:3]]
    want = reward.inspect(prompts, responses)
    with TestClient(create_app(reward, ServeConfig()), raise_server_exceptions=False) as client:
        body = client.post("/v1/inspect", json={"items": [{"prompt": p, "response": r}
                                                          for p, r in zip(prompts, responses)]}).json()
        scored = client.post("/v1/score", json={"items": [{"prompt": p, "response": r}
                                                          for p, r in zip(prompts, responses)]}).json()
    assert body["names"] == ["helpfulness", "verbosity"]
    for key in ("attributes", "decorrelated", "gate", "score"):
        np.testing.assert_allclose(np.array(body[key]), want[key].numpy(), atol=1e-5)
    np.testing.assert_allclose(scored["scores"], want["score"].numpy(), atol=1e-5)


def test_train_armo_takes_every_option_from_its_config(tmp_path):
    """train_armo reads its options from an ArmoConfig, as `rewardlab train --objective armo` builds it (YAML keys
    gate_hidden and gate_layers included)."""
    rated, pairs = synthetic(30, 20, seed=2)
    cfg = ArmoConfig(output=str(tmp_path / "armo"), epochs=2, max_length=64, ridge=0.5, gate_hidden=8, gate_layers=1,
                     seed=3)
    summary = train_armo(rated, pairs, cfg)
    manifest = json.loads((tmp_path / "armo" / "rewardlab.json").read_text())
    assert manifest["armo"] | {"attributes": None} == {"attributes": None, "verbosity": None, "ridge": 0.5,
                                                        "gate_hidden": 8, "gate_layers": 1, "base": "tiny"}
    gate = load_file(str(tmp_path / "armo" / "armo.safetensors"))
    assert gate["gate.mlp.0.weight"].shape[0] == 8 and "gate.mlp.2.weight" in gate and "gate.mlp.4.weight" not in gate
    assert summary["n_pairs"] == 20
