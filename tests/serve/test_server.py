"""A real uvicorn server on 127.0.0.1 (ephemeral port): OpenRLHF-shaped client, load + fault test, graceful stop."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time

import httpx
import pytest

from rewardlab.rewards.base import FunctionReward
from rewardlab.serve.app import ServeConfig
from rewardlab.serve.server import ServerThread


async def openrlhf_post(url: str, payload: dict) -> dict:
    """What OpenRLHF's SingleTurnAgentExecutor._fetch_rewards_via_http does per server (aiohttp, json=payload):
    JSON body with Content-Type application/json, raise_for_status, then a JSON decode that insists on an
    application/json response."""
    async with httpx.AsyncClient(timeout=180) as client:
        headers = {"Content-Type": "application/json"}
        resp = await client.post(url, content=json.dumps(payload).encode(), headers=headers)
        resp.raise_for_status()
        assert resp.headers["content-type"].split(";")[0] == "application/json"
        return resp.json()


def test_openrlhf_shaped_client_gets_offline_rewards(model_reward, tokenizer):
    """Mimics the client exactly: query = decode(prompt_ids + action_ids, skip_special_tokens=False), one sample per
    call, sharded over two server URLs (the second gets empty lists), scores falling back to rewards."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "the cat sat?"}], tokenize=False,
                                           add_generation_prompt=True)
    response = "yes the cat sat on a mat"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    action_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    query = tokenizer.decode(prompt_ids + action_ids, skip_special_tokens=False)
    assert query.endswith(tokenizer.eos_token)
    expected = model_reward.score([""], [prompt + response]).item()

    with ServerThread(model_reward) as server:
        urls = [f"{server.url}/get_reward", f"{server.url}/get_reward"]
        queries, prompts, labels = [query], [prompt], [None]
        per = (len(queries) + len(urls) - 1) // len(urls)

        async def fetch():
            shards = [{"query": queries[i * per:(i + 1) * per], "prompts": prompts[i * per:(i + 1) * per],
                       "labels": labels[i * per:(i + 1) * per]} for i in range(len(urls))]
            return await asyncio.gather(*(openrlhf_post(u, s) for u, s in zip(urls, shards, strict=True)))

        first, empty = asyncio.run(fetch())
    assert empty == {"rewards": [], "scores": [], "extra_logs": {}}
    score = first.get("scores") if first.get("scores") is not None else first.get("rewards")
    assert first["rewards"] == pytest.approx([expected], abs=1e-5) and score == first["rewards"]
    assert all(isinstance(v, float) for vals in first["extra_logs"].values() for v in vals)


def test_load_with_malformed_requests(model_reward):
    """32 concurrent clients x 4 requests, a quarter of them bad: no 5xx, every good one gets its offline score."""
    rng = random.Random(0)
    words = "the cat dog sat ran on a mat good bad 世界 é".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(128)]
    # offline scoring of full texts: over-long ones (> 64 tokens) keep their end, as ModelReward.encode_text does
    expected = model_reward.score_ids([model_reward.encode_text(t) for t in texts]).tolist()
    assert max(len(model_reward.tokenizer(t)["input_ids"]) for t in texts) > 64  # some are cut
    bad_kinds = [
        (b"{not json", 400), (json.dumps({"query": [1]}).encode(), 422),
        (json.dumps({"query": ["a"] * 20}).encode(), 413),
        (json.dumps({"query": ["the cat " * 300]}).encode(), 422), (json.dumps([]).encode(), 422),
    ]
    config = ServeConfig(max_items=16, max_item_tokens=400, max_wait_ms=5)
    with ServerThread(model_reward, config=config) as server:
        async def client(cid: int, http: httpx.AsyncClient):
            results = []
            for k in range(4):
                i = cid * 4 + k
                if i % 4 == 3:
                    body, want = bad_kinds[i % len(bad_kinds)]
                    r = await http.post("/get_reward", content=body, headers={"Content-Type": "application/json"})
                    results.append(("bad", i, r.status_code, want, r.json()))
                else:
                    r = await http.post("/get_reward", json={"query": [texts[i]], "prompts": [""], "labels": [""]})
                    results.append(("good", i, r.status_code, 200, r.json()))
            return results

        async def main():
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
                out = await asyncio.gather(*(client(c, http) for c in range(32)))
                metrics = (await http.get("/metrics")).text
            return [r for rs in out for r in rs], metrics

        t0 = time.perf_counter()
        results, metrics = asyncio.run(main())
        elapsed = time.perf_counter() - t0
        assert server.server.started  # still up
    assert len(results) == 128 and elapsed < 60
    assert not [r for r in results if r[2] >= 500]
    for kind, i, status, want, body in results:
        assert status == want, (kind, i, body)
        if kind == "good":
            assert body["rewards"] == pytest.approx([expected[i]], abs=1e-5)
        else:
            assert body["error"]["message"]
    lines = metrics.splitlines()
    batches = next(float(line.split()[1]) for line in lines if line.startswith("rewardlab_batches_total "))
    assert batches < 96  # the 96 valid single-item requests were merged into fewer batches


def test_graceful_shutdown_finishes_in_flight_requests():
    def slow(prompt, response):
        time.sleep(0.4)
        return float(len(response))

    server = ServerThread(FunctionReward(slow)).start()
    url = server.url
    answers = {}

    def call():
        answers["resp"] = httpx.post(f"{url}/v1/score", json={"items": [{"response": "abc"}]}, timeout=30)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.45)  # 0.4 s for the startup probe, then the request is inside the reward
    server.stop()
    t.join(10)
    assert answers["resp"].status_code == 200 and answers["resp"].json()["scores"] == [3.0]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)


def test_chunked_body_over_the_limit_is_413_and_the_server_stays_up():
    def chunks():
        yield b'{"query": ["'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"]}'

    with ServerThread(FunctionReward(lambda p, r: 1.0), config=ServeConfig(max_body_bytes=10_000)) as server:
        resp = httpx.post(f"{server.url}/get_reward", content=chunks(), timeout=10,
                          headers={"content-type": "application/json"})
        assert resp.status_code == 413 and "too large" in resp.json()["error"]["message"]
        ok = httpx.post(f"{server.url}/get_reward", json={"query": ["fine"]}, timeout=10)
        assert ok.status_code == 200 and ok.json()["rewards"] == [1.0]
