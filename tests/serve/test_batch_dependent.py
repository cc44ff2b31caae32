"""A reward whose scores depend on the batch is served one request at a time, never mixed across clients."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import torch

from rewardlab.serve.app import ServeConfig
from rewardlab.serve.server import ServerThread


class CenteredLength:
    """``len(response) - mean(len over the call)``: each score depends on the other items of the ``score`` call."""

    num_outputs = 1

    def __init__(self, batch_invariant: bool):
        self.batch_invariant = batch_invariant
        self.calls: list[int] = []

    def score(self, prompts, responses):
        self.calls.append(len(responses))
        v = torch.tensor([float(len(r)) for r in responses])
        return v - v.mean()


def serve_concurrently(reward) -> tuple[list[list[float]], list[list[float]], dict]:
    requests = [["a" * (i + 1), "b" * (3 * i + 2), "c"] for i in range(16)]
    cfg = ServeConfig(max_wait_ms=50)  # plenty of time to merge concurrent requests
    with ServerThread(reward, config=cfg) as server:
        async def main():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                resps = await asyncio.gather(*(http.post("/v1/score", json={"items": [{"response": r} for r in req]})
                                               for req in requests))
                return [r.json()["scores"] for r in resps], (await http.get("/health")).json()

        got, health = asyncio.run(main())
    alone = [CenteredLength(True).score([""] * len(req), req).tolist() for req in requests]
    return got, alone, health


def test_batch_dependent_reward_is_scored_one_request_at_a_time():
    reward = CenteredLength(batch_invariant=False)
    got, alone, health = serve_concurrently(reward)
    for g, a in zip(got, alone, strict=True):
        assert g == pytest.approx(a, abs=1e-6)
    assert reward.calls == [3] * 16  # one call per request, never merged
    assert health["batch_invariant"] is False


def test_the_same_reward_declared_invariant_is_merged_and_its_scores_change():
    """The control: without the declaration the server merges clients, which changes these scores."""
    reward = CenteredLength(batch_invariant=True)
    got, alone, health = serve_concurrently(reward)
    assert len(reward.calls) < 16 and health["batch_invariant"] is True
    assert any(g != pytest.approx(a, abs=1e-6) for g, a in zip(got, alone, strict=True))
