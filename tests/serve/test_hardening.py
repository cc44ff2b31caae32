"""Server hardening on loopback: big requests do not stall small ones, stalled clients are cut off, a full queue
answers 503 with Retry-After."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time

import httpx
import pytest

from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.model import ModelReward
from rewardlab.serve.app import ServeConfig
from rewardlab.serve.routes import SMALL_REQUEST_CHARS
from rewardlab.serve.server import ServerThread

SMALL = {"query": ["the cat sat on a mat"]}


def timed_post(http: httpx.Client, payload: dict) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    resp = http.post("/get_reward", json=payload)
    return time.perf_counter() - t0, resp


def small_latencies_during(server: ServerThread, big: bytes, n_small: int = 4) -> tuple[float, list[float], dict]:
    """Baseline small-request latency, then the latencies of small requests sent while ``big`` is in flight."""
    with httpx.Client(base_url=server.url, timeout=120) as http:
        baseline = statistics.median(timed_post(http, SMALL)[0] for _ in range(5))
        out: dict = {}

        def send_big():
            t0 = time.perf_counter()
            with httpx.Client(base_url=server.url, timeout=120) as other:
                out["resp"] = other.post("/get_reward", content=big, headers={"content-type": "application/json"})
            out["seconds"], out["end"] = time.perf_counter() - t0, time.perf_counter()

        t = threading.Thread(target=send_big)
        t.start()
        time.sleep(0.2)  # the big body is uploaded (loopback) and being handled
        during = []
        for _ in range(n_small):
            dt, resp = timed_post(http, SMALL)
            assert resp.status_code == 200
            during.append(dt)
        out["small_end"] = time.perf_counter()
        t.join(120)
    return baseline, during, out


def test_an_8mb_item_is_refused_by_size_at_once_and_small_requests_go_on(model_reward):
    """Before: the 8 MB text was tokenized just to count its tokens (~11 s on one preparation thread) while every
    other request waited. Now the byte limit refuses it before any tokenizing."""
    text = "the cat sat " * 690_000  # 8.28 MB: under the 8 MiB body limit, over 16 x 16384 bytes per item
    big = json.dumps({"query": [text]}).encode()
    assert 8_000_000 < len(big) < ServeConfig().max_body_bytes
    with ServerThread(model_reward) as server:
        baseline, during, out = small_latencies_during(server, big)
    resp = out["resp"]
    assert resp.status_code == 422 and "--max-item-bytes" in resp.json()["error"]["message"]
    assert out["seconds"] < 5.0
    assert max(during) - baseline < 0.5, (baseline, during)


def test_a_big_request_in_preparation_does_not_delay_small_ones(model_reward):
    """A large request (over SMALL_REQUEST_CHARS) whose tokenization takes 1.5 s: small requests sent meanwhile are
    prepared on their own pool and answered with < 0.5 s added delay, before the big one finishes."""
    slow = ModelReward(model_reward.model, model_reward.tokenizer, max_length=64, name="slow")
    encode_text = slow.encode_text

    def slow_encode_text(text, prompt=None):
        if len(text) > SMALL_REQUEST_CHARS:
            time.sleep(1.5)
        return encode_text(text, prompt)

    slow.encode_text = slow_encode_text
    text = "the cat sat on a mat " * 3500  # 73.5 kB: a large request (the tiny tokenizer: ~1 token per byte)
    cfg = ServeConfig(max_item_tokens=100_000)
    assert SMALL_REQUEST_CHARS < len(text) < cfg.max_item_tokens
    big = json.dumps({"query": [text]}).encode()
    with ServerThread(slow, config=cfg) as server:
        baseline, during, out = small_latencies_during(server, big)
    assert out["resp"].status_code == 200
    assert out["resp"].json()["rewards"] == pytest.approx([slow.score_ids([encode_text(text)]).item()], abs=1e-5)
    assert out["end"] > out["small_end"]  # the small requests really overlapped the big one
    assert max(during) - baseline < 0.5, (baseline, during)


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data + b"<still open>"
    return data


def test_stalled_request_heads_are_cut_off_and_free_their_slots(fn_reward):
    """Slowloris: two connections that send half a header / nothing take every slot of limit_concurrency=3 (a real
    request gets uvicorn's 503); within header_timeout_s both get 408 and are closed, and requests work again."""
    cfg = ServeConfig(header_timeout_s=0.5, limit_concurrency=3)
    with ServerThread(fn_reward, config=cfg) as server:
        t0 = time.monotonic()
        stalled = [socket.create_connection((server.host, server.port)) for _ in range(2)]
        stalled[0].sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        time.sleep(0.1)
        busy = httpx.post(f"{server.url}/get_reward", json=SMALL, timeout=10)
        assert busy.status_code == 503
        answers = [read_until_closed(s, timeout_s=3.0) for s in stalled]
        elapsed = time.monotonic() - t0
        for s in stalled:
            s.close()
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        assert elapsed < 0.5 + 1.0
        ok = httpx.post(f"{server.url}/get_reward", json=SMALL, timeout=10)
        assert ok.status_code == 200 and ok.json()["rewards"] == [len(SMALL["query"][0])]


def test_stalled_bodies_get_408_and_idle_keep_alive_connections_close(fn_reward):
    cfg = ServeConfig(body_timeout_s=0.5, timeout_keep_alive_s=0.3)
    with ServerThread(fn_reward, config=cfg) as server:
        s = socket.create_connection((server.host, server.port))
        s.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"query\"")  # 9 of 100 bytes, then nothing
        t0 = time.monotonic()
        answer = read_until_closed(s, timeout_s=3.0)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout" in answer, answer
        assert time.monotonic() - t0 < 0.5 + 1.0

        body = json.dumps(SMALL).encode()
        s = socket.create_connection((server.host, server.port))
        s.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        t0 = time.monotonic()
        answer = read_until_closed(s, timeout_s=3.0)  # the response, then the server closes the idle connection
        s.close()
        assert answer.startswith(b"HTTP/1.1 200") and b"<still open>" not in answer
        assert time.monotonic() - t0 < 0.3 + 1.0


def test_an_oversized_incomplete_request_head_is_refused(fn_reward):
    """h11's max_incomplete_event_size: more than max_header_bytes of a head without its end is refused at once."""
    with ServerThread(fn_reward, config=ServeConfig(max_header_bytes=4096)) as server:
        s = socket.create_connection((server.host, server.port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 8192)  # no end of head
        answer = read_until_closed(s, timeout_s=3.0)
        s.close()
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert httpx.get(f"{server.url}/health", headers={"X-Pad": "a" * 1000}).status_code == 200


def test_a_full_queue_answers_503_with_retry_after_and_the_rest_is_scored():
    """max_queue_tokens=20 with a non-model reward (cost = bytes, 8 per request): while the first request is held in
    the reward, two more queue (16 tokens) and the other four are refused at once with 503 + Retry-After."""
    release = threading.Event()

    def gated_length(prompt, response):
        if response.startswith("x"):
            release.wait(10)
        return float(len(response))

    cfg = ServeConfig(max_queue_tokens=20, max_wait_ms=0)
    with ServerThread(FunctionReward(gated_length), config=cfg) as server:
        async def main():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                first = asyncio.ensure_future(http.post("/v1/score", json={"items": [{"response": "x" * 8}]}))
                await asyncio.sleep(0.2)  # the first is inside the reward; the queue is empty again
                rest = [asyncio.ensure_future(http.post("/v1/score", json={"items": [{"response": "y" * 8}]}))
                        for _ in range(6)]
                deadline = time.monotonic() + 10
                while sum(t.done() for t in rest) < 4 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                release.set()
                out = [await first, *await asyncio.gather(*rest)]
                metrics = (await http.get("/metrics")).text
                return out, metrics

        responses, metrics = asyncio.run(main())
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 3 + [503] * 4
    for r in responses:
        if r.status_code == 200:
            assert r.json()["scores"] == [8.0]
        else:
            assert int(r.headers["retry-after"]) >= 1 and "overloaded" in r.json()["error"]["message"]
    assert 'rewardlab_requests_total{endpoint="/v1/score",status="503"} 4.0' in metrics
