"""Protocol tests for every endpoint, in process (ASGI): right numbers, and a 4xx with a message for bad input."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from fastapi.testclient import TestClient

from rewardlab.errors import UserError
from rewardlab.rewards.model import ModelReward
from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.security import check_bind

CHAT_P = [{"role": "user", "content": "the cat sat?"}]
CHAT_R = [{"role": "assistant", "content": "yes on a mat"}]


@pytest.fixture
def client(model_reward):
    with TestClient(create_app(model_reward, ServeConfig(max_items=8, max_item_tokens=200, max_body_bytes=20_000)),
                    raise_server_exceptions=False) as c:
        yield c


def assert_error(resp, status: int, fragment: str):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == status and fragment in err["message"], err


def test_get_reward_matches_offline_scoring_of_full_text(client, model_reward):
    texts = ["the cat sat on a mat", "héllo 世界 ✓ emoji 🐈", "a"]
    resp = client.post("/get_reward", json={"query": texts, "prompts": ["", "", ""], "labels": ["", "", None]})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    expected = model_reward.score([""] * 3, texts).tolist()
    assert body["rewards"] == pytest.approx(expected, abs=1e-5)
    assert body["scores"] == body["rewards"]
    assert all(isinstance(v, float) for vals in body["extra_logs"].values() for v in vals)


def test_get_reward_strips_special_tokens_the_client_kept(client, model_reward):
    """OpenRLHF decodes with special tokens kept: a trailing eos / leading pad must not change the score."""
    plain = client.post("/get_reward", json={"query": ["the cat sat"]}).json()["rewards"][0]
    for text in ["the cat sat<eos>", "<pad><pad>the cat sat<eos><pad>", "the cat sat<eos><eos>"]:
        got = client.post("/get_reward", json={"query": [text]}).json()["rewards"][0]
        assert got == pytest.approx(plain, abs=1e-6), text


def test_empty_lists_are_answered_with_empty_lists(client):
    assert client.post("/get_reward", json={"query": [], "prompts": [], "labels": []}).json() == \
        {"rewards": [], "scores": [], "extra_logs": {}}
    assert client.post("/v1/score", json={"items": []}).json()["scores"] == []
    assert client.post("/v1/compare", json={"items": []}).json()["prob_a"] == []
    assert client.post("/classify", json={"input": []}).json()["data"] == []


def test_classify_follows_vllm_activation_rules(client, model_reward):
    raw = model_reward.score([""], ["the cat sat"]).item()
    verl = client.post("/classify", json={"model": "m", "input": "the cat sat", "activation": False}).json()
    assert verl["data"][-1]["probs"][-1] == pytest.approx(raw, abs=1e-5)  # verl reads data[-1].probs[-1]
    assert verl["object"] == "list" and verl["data"][0]["num_classes"] == 1 and verl["usage"]["prompt_tokens"] > 0
    default = client.post("/classify", json={"input": ["the cat sat"]}).json()
    assert default["data"][0]["probs"][0] == pytest.approx(torch.sigmoid(torch.tensor(raw)).item(), abs=1e-5)
    off = client.post("/classify", json={"input": "the cat sat", "use_activation": False}).json()
    assert off["data"][0]["probs"][0] == pytest.approx(raw, abs=1e-5)
    ids = model_reward.encode([""], ["the cat sat"])[0]
    by_ids = client.post("/classify", json={"input": [ids], "use_activation": False}).json()
    assert by_ids["data"][0]["probs"][0] == pytest.approx(raw, abs=1e-5)
    chat = client.post("/classify", json={"messages": CHAT_P + CHAT_R, "use_activation": False}).json()
    assert chat["data"][0]["probs"][0] == pytest.approx(model_reward.score([CHAT_P], [CHAT_R]).item(), abs=1e-5)


def test_pooling_score_and_models(client, model_reward):
    raw = model_reward.score(["", ""], ["the cat", "a dog"]).tolist()
    pooled = client.post("/pooling", json={"input": ["the cat", "a dog"]}).json()
    assert [d["data"][0] for d in pooled["data"]] == pytest.approx(raw, abs=1e-5)
    pair = model_reward.score(["the", "the"], ["cat", "dog"])
    score = client.post("/score", json={"text_1": "the", "text_2": ["cat", "dog"]}).json()
    assert [d["score"] for d in score["data"]] == pytest.approx(torch.sigmoid(pair).tolist(), abs=1e-5)
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "tiny" and models["data"][0]["max_model_len"] == 64


def test_native_score_plain_conversational_normalized(client, model_reward):
    prompts, responses = ["the", CHAT_P], ["cat sat", CHAT_R]
    body = client.post("/v1/score", json={"items": [{"prompt": p, "response": r} for p, r in zip(prompts, responses)],
                                          "normalize": True, "members": True}).json()
    expected = model_reward.score(prompts, responses)
    assert body["scores"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert body["normalized"] == pytest.approx(((expected - 0.25) / 2.0).tolist(), abs=1e-5)
    assert [m[0] for m in body["members"]] == pytest.approx(expected.tolist(), abs=1e-5)


def test_compare_is_sigmoid_of_reward_difference(client, model_reward):
    body = client.post("/v1/compare", json={"items": [{"prompt": "the", "a": "cat sat", "b": "dog ran"}]}).json()
    r = model_reward.score(["the", "the"], ["cat sat", "dog ran"])
    assert body["prob_a"][0] == pytest.approx(torch.sigmoid(r[0] - r[1]).item(), abs=1e-5)
    assert body["reward_a"][0] == pytest.approx(r[0].item(), abs=1e-5)


def test_multi_output_reward_members_and_extra_logs(model_reward_2):
    with TestClient(create_app(model_reward_2)) as c:
        rows = model_reward_2.score(["the"], ["cat"])
        body = c.post("/v1/score", json={"items": [{"prompt": "the", "response": "cat"}], "members": True}).json()
        assert body["members"][0] == pytest.approx(rows[0].tolist(), abs=1e-5)
        assert body["scores"][0] == pytest.approx(rows[0].mean().item(), abs=1e-5)
        logs = c.post("/get_reward", json={"query": ["cat"]}).json()["extra_logs"]
        assert set(logs) == {"raw_reward", "reward_0", "reward_1"}
        probs = c.post("/classify", json={"input": "cat"}).json()["data"][0]["probs"]
        assert sum(probs) == pytest.approx(1.0, abs=1e-6)  # softmax over 2 labels
        assert c.get("/health").json()["num_outputs"] == 2


def test_function_reward_is_served_with_full_text_as_response(fn_reward):
    with TestClient(create_app(fn_reward)) as c:
        assert c.post("/get_reward", json={"query": ["abcd", "日本"]}).json()["rewards"] == [4.0, 2.0]
        body = c.post("/v1/score", json={"items": [{"prompt": "xx", "response": CHAT_R}]}).json()
        assert body["scores"] == [float(len("yes on a mat"))]
        err = c.post("/classify", json={"input": [[1, 2, 3]]})
        assert_error(err, 422, "token-id input")


@pytest.mark.parametrize("payload, fragment", [
    ({"query": "not a list"}, "query"),
    ({"query": [1, 2]}, "query.0"),
    ({"query": [None]}, "query.0"),
    ({"prompts": ["x"]}, "query: Field required"),
    ([1, 2, 3], "JSON object"),
])
def test_wrong_types_are_422_with_a_message(client, payload, fragment):
    assert_error(client.post("/get_reward", json=payload), 422, fragment)


def test_native_validation_errors(client):
    assert_error(client.post("/v1/score", json={"items": [{"prompt": "x"}]}), 422, "items.0.response")
    assert_error(client.post("/v1/score", json={"items": [{"response": [{"role": "user"}]}]}), 422, "content")
    assert_error(client.post("/v1/score", json={"items": [{"response": []}]}), 422, "response")
    assert_error(client.post("/classify", json={"input": "a", "messages": CHAT_R}), 422, "exactly one")
    assert_error(client.post("/classify", json={"input": [[999999]]}), 422, "outside")
    assert_error(client.post("/score", json={"text_1": ["a", "b"], "text_2": ["c", "d", "e"]}), 422, "1:N")


def test_malformed_json_is_400(client):
    for raw in [b"{bad", b'{"query": ["a"]', b"\xff\xfe\x00", b""]:
        resp = client.post("/get_reward", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code in (400, 422) and "error" in resp.json(), raw
    assert_error(client.post("/get_reward", content=b"{bad", headers={"content-type": "application/json"}), 400,
                 "malformed JSON")


def test_hostile_bodies_are_4xx(client, model_reward):
    deep = b'{"query": ["a"], "labels": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    resp = client.post("/get_reward", content=deep, headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["message"]
    for payload in [b'{"query": ["\\ud800"]}', b'{"items": [{"response": "ok \\udfff"}]}']:
        path = "/get_reward" if b"query" in payload else "/v1/score"
        assert_error(client.post(path, content=payload, headers={"content-type": "application/json"}), 422,
                     "lone surrogate")
    assert_error(client.post("/get_reward", content=b'{"query": ["a"]}', headers={"content-length": "x"}), 400,
                 "Content-Length")
    tok = copy.deepcopy(model_reward.tokenizer)
    tok.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"
    strict = ModelReward(model_reward.model, tok, max_length=64)
    with TestClient(create_app(strict)) as c:
        assert_error(c.post("/v1/score", json={"items": [{"prompt": CHAT_P, "response": CHAT_R}]}), 422,
                     "roles must alternate")
        assert c.post("/v1/score", json={"items": [{"prompt": "plain", "response": "text"}]}).status_code == 200


def test_limits_are_413_or_422_and_the_server_stays_up(client, fn_reward):
    assert_error(client.post("/get_reward", json={"query": ["a"] * 9}), 413, "at most 8")
    assert_error(client.post("/v1/compare", json={"items": [{"a": "x", "b": "y"}] * 5}), 413, "at most 8")
    long = "the cat sat " * 100  # > 200 tokens
    assert_error(client.post("/get_reward", json={"query": ["ok", long]}), 422, "item 1 has")
    assert_error(client.post("/v1/score", json={"items": [{"prompt": long, "response": "x"}]}), 422, "max-item-tokens")
    huge = json.dumps({"query": ["x" * 30_000]})
    assert_error(client.post("/get_reward", content=huge, headers={"content-type": "application/json"}), 413,
                 "too large")
    assert_error(client.get("/nope"), 404, "Not Found")
    assert_error(client.get("/get_reward"), 405, "Method Not Allowed")
    assert client.get("/health").json()["status"] == "ok"
    metrics = client.get("/metrics").text
    assert 'rewardlab_requests_total{endpoint="/get_reward",status="413"} 2.0' in metrics  # item count, body
    assert 'rewardlab_requests_total{endpoint="/get_reward",status="422"} 1.0' in metrics


def test_long_input_within_limits_is_truncated_like_offline(model_reward):
    long = "the cat sat " * 40  # > max_length 64, < max_item_tokens
    with TestClient(create_app(model_reward)) as c:
        got = c.post("/v1/score", json={"items": [{"prompt": long, "response": "good"}]}).json()["scores"][0]
        assert got == pytest.approx(model_reward.score([long], ["good"]).item(), abs=1e-5)
        before = model_reward.encoder.stats.response_truncated
        assert len(c.post("/get_reward", json={"query": [long * 3]}).json()["rewards"]) == 1
        assert model_reward.encoder.stats.response_truncated == before + 1
        assert "rewardlab_truncated_items_total" in c.get("/metrics").text


def test_metrics_report_batches(client):
    client.post("/get_reward", json={"query": ["a", "b", "c"]})
    text = client.get("/metrics").text
    assert "# TYPE rewardlab_batch_items histogram" in text
    assert 'rewardlab_items_total{endpoint="/get_reward"} 3.0' in text
    assert "rewardlab_batch_items_count 1" in text
    assert "rewardlab_queue_tokens 0.0" in text  # drained


def test_bearer_token_auth(model_reward):
    with TestClient(create_app(model_reward, ServeConfig(token="s3cret"))) as c:
        assert_error(c.post("/get_reward", json={"query": ["a"]}), 401, "missing bearer token")
        assert_error(c.post("/get_reward", json={"query": ["a"]}, headers={"Authorization": "Bearer nope"}), 401,
                     "invalid bearer token")
        assert_error(c.post("/get_reward", json={"query": ["a"]}, headers={"Authorization": "Basic s3cret"}), 401,
                     "invalid")
        assert_error(c.get("/metrics"), 401, "bearer")
        ok = c.post("/get_reward", json={"query": ["a"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200  # liveness probes need no token
        assert c.get("/openapi.json").json()["paths"].keys() >= {"/get_reward", "/classify", "/v1/score"}


def test_non_loopback_bind_needs_a_token():
    with pytest.raises(UserError, match="refusing to bind"):
        check_bind("0.0.0.0", None)
    with pytest.raises(UserError):
        check_bind("192.168.1.5", None)
    check_bind("0.0.0.0", "tok")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)


def test_reward_user_errors_are_422_and_server_stays_up():
    from rewardlab.rewards.base import FunctionReward

    def needs_reference(prompt, response):
        if "?" not in prompt:
            raise UserError(f"prompt {prompt!r} has no reference answer")
        return 1.0

    with TestClient(create_app(FunctionReward(needs_reference))) as c:
        bad = c.post("/v1/score", json={"items": [{"prompt": "no ref", "response": "x"}]})
        assert bad.status_code == 422 and "no reference answer" in bad.json()["error"]["message"]
        ok = c.post("/v1/score", json={"items": [{"prompt": "what?", "response": "x"}]})
        assert ok.status_code == 200 and ok.json()["scores"] == [1.0]


def test_inspect_needs_an_inspectable_reward(client):
    r = client.post("/v1/inspect", json={"items": [{"prompt": "p", "response": "r"}]})
    assert r.status_code == 422 and "inspection" in r.json()["error"]["message"]


def test_inspect_returns_attributes_and_gate():
    from rewardlab.rewards.base import FunctionReward

    class Inspectable(FunctionReward):
        def inspect(self, prompts, responses):
            attrs = torch.tensor([[float(len(r)), 1.0] for r in responses])
            gate = torch.tensor([[0.25, 0.75]] * len(responses))
            return {"names": ["length", "one"], "attributes": attrs, "gate": gate, "score": (attrs * gate).sum(-1)}

    with TestClient(create_app(Inspectable(lambda p, r: 0.0))) as c:
        r = c.post("/v1/inspect", json={"items": [{"prompt": "p", "response": "abcd"}]})
        assert r.status_code == 200
        body = r.json()
        assert body["names"] == ["length", "one"] and body["attributes"] == [[4.0, 1.0]]
        assert body["score"] == [4.0 * 0.25 + 0.75]


def test_inspect_checks_every_item_against_the_limits_before_running():
    from rewardlab.rewards.base import FunctionReward

    calls = []

    class Inspectable(FunctionReward):
        def inspect(self, prompts, responses):
            calls.append(len(responses))
            return {"score": torch.zeros(len(responses))}

    cfg = ServeConfig(max_item_tokens=50)  # a non-model reward: 50 bytes per item
    with TestClient(create_app(Inspectable(lambda p, r: 0.0), cfg)) as c:
        items = [{"prompt": "p", "response": "short"}, {"prompt": "p", "response": "x" * 60}]
        assert_error(c.post("/v1/inspect", json={"items": items}), 422, "item 1 has 61 bytes")
        assert calls == []  # refused before the reward ran
        assert c.post("/v1/inspect", json={"items": items[:1]}).status_code == 200 and calls == [1]
