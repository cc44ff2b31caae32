"""/v1/score on a reward with members (an ensemble, any method, BRME included) returns the per-member scores and
their names by default (they were null unless asked); 'members: false' leaves them out; a k-output reward that is
no ensemble answers as before. Member scores are checked against the stub members' own outputs, the aggregate
against the ensemble's offline score."""

import pytest
import torch
from fastapi.testclient import TestClient

from rewardlab.serve.app import ServeConfig, create_app
from tests.rewards.test_brme import Heads

TEXTS = ["abcde", "aaab ccc", "eeee d"]


@pytest.mark.parametrize("method, extra", [("mean", {}), ("wco", {}), ("uwo", {"uwo_lambda": 0.2}),
                                           ("brme", {"brme_lambda": 0.7})])
def test_native_score_returns_an_ensembles_members_by_default(method, extra):
    from rewardlab.rewards.ensemble import EnsembleReward

    heads = [Heads("ab", "h0"), Heads("cde", "h1")]
    ens = EnsembleReward(heads, method=method, standardize=False, **extra)
    items = [{"response": t} for t in TEXTS]
    with TestClient(create_app(ens, ServeConfig())) as c:
        body = c.post("/v1/score", json={"items": items}).json()
        off = c.post("/v1/score", json={"items": items, "members": False}).json()
        empty = c.post("/v1/score", json={"items": []}).json()
    want = torch.cat([h.score([""] * 3, TEXTS) for h in heads], 1)
    assert body["members"] == want.tolist()  # small integers: exact
    assert body["member_names"] == ["h0[0]", "h0[1]", "h1[0]", "h1[1]", "h1[2]"]
    assert body["scores"] == pytest.approx(ens.score([""] * 3, TEXTS).tolist(), abs=1e-6)
    assert off["members"] is None and "member_names" not in off and off["scores"] == body["scores"]
    assert empty["members"] == [] and empty["scores"] == []


def test_a_k_output_reward_is_no_ensemble():
    with TestClient(create_app(Heads("ab", "two"), ServeConfig())) as c:
        body = c.post("/v1/score", json={"items": [{"response": "aab"}]}).json()
        asked = c.post("/v1/score", json={"items": [{"response": "aab"}], "members": True}).json()
    assert body["members"] is None and "member_names" not in body
    assert body["scores"] == pytest.approx([(2 + 2) / 2])  # the mean of the outputs (a: 2, b: 2 · 1)
    assert asked["members"] == [[2.0, 2.0]]
