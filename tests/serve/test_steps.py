"""Serving a process reward model: per-step rewards on /v1/score and vLLM's STEP-pooler shape on /pooling.

A stub PRM with step rewards computable by hand (p = characters / 10, "??" = a step dropped by truncation), and a
real PRMReward (a 2-label GPT-2 token classifier) against its offline ``step_scores``.
"""

from __future__ import annotations

import math

import pytest
import torch
from fastapi.testclient import TestClient

from rewardlab.rewards.prm import PRMReward, aggregate_steps, response_steps
from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.routes import step_rows
from rewardlab.serve.scorer import ServedReward
from tests.models.test_prm import save_token_classifier


class HandPRM:
    """Step j's reward is len(step) / 10, NaN for a step "??"; the score is the aggregate (``aggregate``)."""

    num_outputs = 1
    separator = "\n"
    name = "hand-prm"

    def __init__(self, aggregate: str = "min"):
        self.aggregate = aggregate

    def step_scores(self, prompts, responses):
        return [[math.nan if s == "??" else len(s) / 10 for s in response_steps(r, self.separator)]
                for r in responses]

    def score(self, prompts, responses):
        return torch.tensor([aggregate_steps(s, self.aggregate) for s in self.step_scores(prompts, responses)])


@pytest.fixture
def hand_client():
    with TestClient(create_app(HandPRM("min"), ServeConfig(max_items=8)), raise_server_exceptions=False) as c:
        yield c


def test_native_score_steps_by_hand(hand_client):
    items = [{"prompt": "q", "response": "ab\ncdef"}, {"prompt": "q", "response": "abcde"},
             {"prompt": "q", "response": "abc\n??\nabcdefgh"}]
    body = hand_client.post("/v1/score", json={"items": items, "steps": True}).json()
    assert body["step_rewards"] == [pytest.approx([0.2, 0.4]), pytest.approx([0.5]),
                                    [pytest.approx(0.3), None, pytest.approx(0.8)]]
    assert body["scores"] == pytest.approx([0.2, 0.5, 0.3])  # min over scored steps
    plain = hand_client.post("/v1/score", json={"items": items}).json()
    assert plain["scores"] == pytest.approx([0.2, 0.5, 0.3]) and "step_rewards" not in plain
    empty = hand_client.post("/v1/score", json={"items": [], "steps": True}).json()
    assert empty["scores"] == [] and empty["step_rewards"] == []


def test_conversation_steps_are_the_assistant_turns_split(hand_client):
    items = [{"prompt": [{"role": "user", "content": "q"}],
              "response": [{"role": "assistant", "content": "a\nbcd"}]}]
    body = hand_client.post("/v1/score", json={"items": items, "steps": True}).json()
    assert body["step_rewards"] == [pytest.approx([0.1, 0.3])]


def test_pooling_has_vllm_step_pooler_shape(hand_client):
    """vLLM: per input, data = [[p_neg, p_pos], ...] one row per step (softmax over the two labels)."""
    body = hand_client.post("/pooling", json={"input": ["ab\ncdef", "abcde"]}).json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "pooling" for d in body["data"])
    assert body["data"][0]["data"] == [pytest.approx([0.8, 0.2]), pytest.approx([0.6, 0.4])]
    assert body["data"][1]["data"] == [pytest.approx([0.5, 0.5])]
    assert hand_client.post("/pooling", json={"input": "ab\ncdef", "use_activation": True}).json()["data"][0][
        "data"] == body["data"][0]["data"]
    raw = hand_client.post("/pooling", json={"input": "ab\ncdef", "use_activation": False}).json()["data"][0]["data"]
    assert raw == [pytest.approx([0.0, math.log(0.2 / 0.8)]), pytest.approx([0.0, math.log(0.4 / 0.6)])]
    softmaxed = torch.softmax(torch.tensor(raw), dim=-1).tolist()
    assert softmaxed == [pytest.approx([0.8, 0.2]), pytest.approx([0.6, 0.4])]
    chat = hand_client.post("/pooling", json={"messages": [{"role": "user", "content": "q"},
                                                           {"role": "assistant", "content": "abcd\nabcdefg"}]})
    assert chat.json()["data"][0]["data"] == [pytest.approx([0.6, 0.4]), pytest.approx([0.3, 0.7])]
    assert hand_client.post("/pooling", json={"input": []}).json()["data"] == []


def test_step_rows_by_hand():
    assert step_rows([0.25, math.nan]) == [[0.75, 0.25], [None, None]]
    assert step_rows([0.5, 0.0, 1.0], activation=False) == [[0.0, 0.0], [0.0, None], [0.0, None]]


def test_mixed_batches_keep_each_items_own_steps():
    """One batch holds items with 1..3 steps: rows are NaN-padded, yet each item gets exactly its own steps."""
    served = ServedReward(HandPRM("product"))
    items = [("q", "abc"), ("q", "a\nbb\nccc"), ("q", "abcd\nab")]
    rows = served.run(items)
    assert rows.shape == (3, 2 + 3)
    assert served.steps(rows) == [pytest.approx([0.3]), pytest.approx([0.1, 0.2, 0.3]), pytest.approx([0.4, 0.2])]
    torch.testing.assert_close(served.scalar(rows), torch.tensor([0.3, 0.006, 0.08]))
    assert served.matrix(rows).shape == (3, 1)


def test_steps_on_a_reward_without_steps_is_422(fn_reward):
    with TestClient(create_app(fn_reward), raise_server_exceptions=False) as c:
        resp = c.post("/v1/score", json={"items": [{"response": "x"}], "steps": True})
    assert resp.status_code == 422 and "process reward model" in resp.json()["error"]["message"]


@pytest.fixture(scope="module")
def prm(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("prm")
    save_token_classifier("gpt2", corpus, out, 2)
    return PRMReward.from_pretrained(out, aggregate="min", device="cpu")


def test_real_prm_serves_its_offline_step_scores(prm):
    prompts = ["help me", "a question", "x"]
    responses = ["the cat sat\non a mat\nyes", "no", "big red dog\none two"]
    offline = prm.step_scores(prompts, responses)
    items = [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]
    with TestClient(create_app(prm), raise_server_exceptions=False) as c:
        body = c.post("/v1/score", json={"items": items, "steps": True}).json()
        pooled = c.post("/pooling", json={"input": responses[0]}).json()  # a full text: no prompt part
        assert c.get("/health").json()["num_outputs"] == 1
    assert [len(s) for s in body["step_rewards"]] == [3, 1, 2]
    for got, want in zip(body["step_rewards"], offline):
        assert got == pytest.approx(want, abs=1e-6)
    assert body["scores"] == pytest.approx(prm.score(prompts, responses).tolist(), abs=1e-6)
    alone = prm.step_scores([""], responses[:1])[0]
    assert pooled["data"][0]["data"] == [pytest.approx([1 - p, p], abs=1e-6) for p in alone]


def test_classify_on_a_prm_gives_the_aggregate_as_two_class_probs(hand_client):
    """The aggregate is already P(correct): probs [1 − p, p] (not σ(p)); without activation logits [0, log-odds]."""
    body = hand_client.post("/classify", json={"input": ["ab\ncdef", "abcdefgh"]}).json()
    assert [d["probs"] for d in body["data"]] == [pytest.approx([0.8, 0.2]), pytest.approx([0.2, 0.8])]
    assert [d["label"] for d in body["data"]] == ["LABEL_0", "LABEL_1"] and body["data"][0]["num_classes"] == 2
    raw = hand_client.post("/classify", json={"input": "ab\ncdef", "use_activation": False}).json()["data"][0]
    assert raw["probs"] == pytest.approx([0.0, math.log(0.2 / 0.8)])
