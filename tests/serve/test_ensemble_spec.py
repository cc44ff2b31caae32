"""Serving an ensemble spec: `rewardlab serve 'ensemble:...'` standardizes members with their manifests' stats (or
`--reference FILE`), states them, and refuses members without stats; a live server on 127.0.0.1 answers the
aggregate of the members' z-scores, rebuilt here by hand from each member's raw scores."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from rewardlab.rewards.calibrate import normalization_record, write_normalization
from rewardlab.rewards.model import ModelReward
from rewardlab.rewards.registry import load_reward
from rewardlab.serve.server import ServerThread
from tests.rewards.calibrate_world import build_world, responses_of

TEXTS = ["the cat sat on a mat", "a big red dog", "good"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("serve-ensemble"))


@pytest.fixture
def members(world, tmp_path):
    return [shutil.copytree(world / f"rm{i}", tmp_path / f"rm{i}") for i in (0, 1)]


def calibrate(d, data) -> dict:
    reward = ModelReward.from_pretrained(d, device="cpu")
    record = normalization_record(reward.score(*responses_of(data)), {"data": {"file": str(data)}}, str(d))
    write_normalization(d, record)
    return record


@pytest.fixture
def captured(monkeypatch):
    import rewardlab.serve.server as server

    started = []
    monkeypatch.setattr(server, "serve_forever", lambda reward, **kw: started.append(reward))
    return started


def test_serve_cli_with_an_ensemble_spec(cli, world, members, captured):
    spec = f"ensemble:uwo=0.1:{members[0]},{members[1]}"
    code, _, err = cli("serve", spec)
    assert code == 2 and "no 'normalization'" in err and not captured
    stats = [calibrate(m, world / "ref.jsonl") for m in members]
    code, _, err = cli("serve", spec)
    assert code == 0 and all(f"mean {s['mean']:.6g} std {s['std']:.6g}" in err for s in stats), err
    assert captured[-1].stats_from == "manifests" and captured[-1].uwo_lambda == 0.1
    code, _, err = cli("serve", spec, "--reference", world / "pairs.jsonl")
    assert code == 0 and "48 responses of" in err and captured[-1].stats_from.startswith("48 responses")
    code, _, err = cli("serve", spec, "--normalize")
    assert code == 2 and "standardized already" in err


def test_live_server_answers_the_aggregate_of_member_z_scores(world, members):
    stats = [calibrate(m, world / "ref.jsonl") for m in members]
    raw = [ModelReward.from_pretrained(m, device="cpu").score([""] * 3, TEXTS).tolist() for m in members]
    z = [[(raw[j][i] - stats[j]["mean"]) / stats[j]["std"] for j in range(2)] for i in range(3)]
    ensemble = load_reward(f"ensemble:wco:{members[0]},{members[1]}", device="cpu")
    with ServerThread(ensemble) as server:
        assert server.host == "127.0.0.1"
        got = httpx.post(f"{server.url}/get_reward", json={"query": TEXTS}, timeout=30).json()["rewards"]
        body = httpx.post(f"{server.url}/v1/score", json={"items": [{"response": t} for t in TEXTS],
                                                          "members": True}, timeout=30).json()
        refused = httpx.post(f"{server.url}/v1/score", json={"items": [{"response": "a"}], "normalize": True},
                             timeout=30)
    assert got == pytest.approx([min(row) for row in z], abs=1e-5)
    assert body["scores"] == pytest.approx(got, abs=1e-6)
    assert [v for row in body["members"] for v in row] == pytest.approx([v for row in z for v in row], abs=1e-5)
    assert got != pytest.approx([min(row) for row in zip(*raw)], abs=1e-3)  # raw minima differ: stats are used
    assert refused.status_code == 422
    assert json.loads((members[0] / "rewardlab.json").read_text())["normalization"]["n"] == 32
