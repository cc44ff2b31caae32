"""RewardClient retries, RemoteReward against a live server, the TRL reward-function adapter, ensembles served."""

from __future__ import annotations

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.ensemble import EnsembleReward
from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.client import RemoteError, RemoteReward, RewardClient, make_reward_func
from rewardlab.serve.server import ServerThread

CHAT_P = [{"role": "user", "content": "the cat sat?"}]
CHAT_R = [{"role": "assistant", "content": "yes on a mat"}]


def scripted(statuses: list):
    """A MockTransport answering with the given statuses in turn (an Exception instance is raised instead)."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        s = statuses[min(len(calls) - 1, len(statuses) - 1)]
        if isinstance(s, Exception):
            raise s
        body = {"rewards": [1.5], "scores": [1.5], "extra_logs": {}} if s == 200 else \
            {"error": {"message": f"status {s}", "type": "x", "param": None, "code": s}}
        return httpx.Response(s, json=body)

    return httpx.MockTransport(handler), calls


def test_client_retries_5xx_and_connection_errors_but_not_4xx():
    transport, calls = scripted([503, 500, 200])
    with RewardClient("http://rm:5000/get_reward", retries=3, backoff_s=0, transport=transport) as c:
        assert c.get_reward(["a"]) == [1.5]
    assert len(calls) == 3 and calls[0].url.path == "/get_reward"

    transport, calls = scripted([httpx.ConnectError("refused"), 200])
    with RewardClient("http://rm:5000", retries=3, backoff_s=0, transport=transport) as c:
        assert c.get_reward(["a"]) == [1.5]
    assert len(calls) == 2

    transport, calls = scripted([422])
    with RewardClient("http://rm:5000", retries=3, backoff_s=0, token="t", transport=transport) as c:
        with pytest.raises(RemoteError, match="HTTP 422: status 422") as e:
            c.get_reward(["a"])
    assert len(calls) == 1 and e.value.status == 422 and calls[0].headers["authorization"] == "Bearer t"

    transport, calls = scripted([502])
    with RewardClient("http://rm:5000", retries=2, backoff_s=0, transport=transport) as c:
        with pytest.raises(RemoteError, match="after 3 tries"):
            c.get_reward(["a"])
    assert len(calls) == 3


def test_remote_reward_equals_local_reward(model_reward, model_reward_2):
    prompts, responses = ["the", CHAT_P, "a dog"], ["cat sat", CHAT_R, "ran"]
    with ServerThread(model_reward, config=ServeConfig(token="tok")) as server:
        remote = RemoteReward(server.url, token="tok", chunk_size=2)  # 3 items -> 2 requests
        assert torch.allclose(remote.score(prompts, responses), model_reward.score(prompts, responses), atol=1e-5)
        rlhf = RemoteReward(f"{server.url}/get_reward", token="tok", protocol="openrlhf")
        full = [p + r for p, r in zip(["the ", "a "], ["cat", "dog"], strict=True)]
        assert torch.allclose(rlhf.score(["the ", "a "], ["cat", "dog"]), model_reward.score(["", ""], full), atol=1e-5)
        with pytest.raises(RemoteError, match="401"):
            RemoteReward(server.url, token="wrong", retries=0).score(["a"], ["b"])
        remote.close()
        rlhf.close()
    with ServerThread(model_reward_2) as server:
        remote = RemoteReward(server.url)
        rows = remote.score(["the"], ["cat"])
        assert rows.shape == (1, 2) and torch.allclose(rows, model_reward_2.score(["the"], ["cat"]), atol=1e-5)


def test_trl_reward_func_local_and_remote(model_reward):
    """TRL calls reward_func(prompts=, completions=, completion_ids=, **columns, trainer_state=, log_extra=, ...)."""
    prompts = [CHAT_P, CHAT_P]
    completions = [CHAT_R, [{"role": "assistant", "content": "no"}]]
    expected = model_reward.score(prompts, completions).tolist()
    trl_kwargs = {"completion_ids": [[1], [2]], "label": ["x", "y"], "trainer_state": None,
                  "log_extra": lambda *a: None, "log_metric": lambda *a: None}
    local = make_reward_func(model_reward)
    assert local.__name__ == "rewardlab_tiny"
    assert local(prompts=prompts, completions=completions, **trl_kwargs) == pytest.approx(expected, abs=1e-6)
    with ServerThread(model_reward) as server:
        remote = make_reward_func(server.url)
        got = remote(prompts=prompts, completions=completions, **trl_kwargs)
        assert got == pytest.approx(expected, abs=1e-5) and all(isinstance(v, float) for v in got)
        assert remote(prompts=[], completions=[]) == []
        remote.reward.close()
    nan = make_reward_func(FunctionReward(lambda p, r: float("nan")))
    assert nan(prompts=["a"], completions=["b"]) == [None]


def test_ensemble_is_served_with_aggregate_and_members():
    a = FunctionReward(lambda p, r: float(len(r)))
    b = FunctionReward(lambda p, r: float(r.count("a")))
    ens = EnsembleReward([a, b], method="wco", standardize=False)
    with TestClient(create_app(ens, name="ens")) as c:
        body = c.post("/v1/score", json={"items": [{"response": "banana"}, {"response": "xy"}], "members": True}).json()
    assert body["scores"] == ens.score(["", ""], ["banana", "xy"]).tolist() == [3.0, 0.0]
    assert body["members"] == [[6.0, 3.0], [2.0, 0.0]]


def test_client_waits_for_retry_after_on_503(monkeypatch):
    import rewardlab.rewards.remote as remote

    slept = []
    monkeypatch.setattr(remote.time, "sleep", slept.append)
    answers = iter([httpx.Response(503, headers={"Retry-After": "3"}, json={"error": {"message": "busy"}}),
                    httpx.Response(503, headers={"Retry-After": "999"}, json={"error": {"message": "busy"}}),
                    httpx.Response(200, json={"rewards": [2.0]})])
    transport = httpx.MockTransport(lambda request: next(answers))
    with RewardClient("http://rm:5000", retries=3, backoff_s=0.5, max_retry_after_s=20, transport=transport) as c:
        assert c.get_reward(["a"]) == [2.0]
    assert slept == [3.0, 20.0]  # the server's delay (over the 0.5 s backoff), capped at max_retry_after_s


def test_remote_openrlhf_reward_forwards_labels_and_reports_batch_invariance():
    from rewardlab.rewards.base import score_with_labels
    from rewardlab.rewards.registry import load_reward

    exact = load_reward("rule:exact")
    exact.batch_invariant = False  # declared by the served reward, learnt by the client from /health
    with ServerThread(exact) as server:
        remote = RemoteReward(server.url, protocol="openrlhf", retries=0)
        got = score_with_labels(remote, ["Q: capital? ", "Q: capital? "], ["Paris", "Paris"], ["paris", "rome"])
        assert got.tolist() == [1.0, 0.0]
        assert RemoteReward(server.url).batch_invariant is False and remote.batch_invariant is True
