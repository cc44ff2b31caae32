"""`rewardlab serve --engine ray` on a local Ray cluster (CPU): two Ray Serve replicas of the standard app answer
the OpenRLHF-, verl/vLLM- and TRL-shaped clients with the offline scores, refuse a missing or wrong token, keep the
413/422 limits, spread requests over both replicas, and report a replica's UserError on the driver; the CLI serves
until SIGTERM and refuses a public bind without a token before Ray starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from rewardlab.errors import UserError
from rewardlab.serve.app import ServeConfig

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
from tests.ray_cluster import ray_cluster  # noqa: E402, F401 (the module's local Ray cluster)
from tests.serve.test_server import openrlhf_post  # noqa: E402 (OpenRLHF's client, as the uvicorn tests use it)

pytestmark = pytest.mark.usefixtures("ray_cluster")
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAT_P = [{"role": "user", "content": "the cat sat?"}]
CHAT_R = [{"role": "assistant", "content": "yes on a mat"}]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model

    out = tmp_path_factory.mktemp("ray-serve") / "tiny-rm"
    save_reward_model(tiny_reward_model(tokenizer, seed=3), tokenizer, out, manifest={"max_length": 64})
    return out


@pytest.fixture(scope="module")
def offline(checkpoint):
    from rewardlab.rewards.model import ModelReward

    return ModelReward.from_pretrained(checkpoint)


@pytest.fixture(scope="class")
def server(checkpoint):
    """Two replicas of the checkpoint (each loads it from the directory itself), a token and tight limits."""
    from rewardlab.serve.ray_serve import RayServer

    spec = str(checkpoint)

    def load():  # runs in each replica
        from rewardlab.rewards.registry import load_reward

        return load_reward(spec, device="cpu")

    config = ServeConfig(token=TOKEN, max_items=8, max_item_tokens=200, max_body_bytes=20_000)
    with RayServer(load, config, replicas=2) as s:
        yield s


def assert_error(resp: httpx.Response, status: int, fragment: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == status and fragment in err["message"], err


class TestTwoReplicas:
    """One 2-replica deployment for these tests (class-scoped: stopped before the next test starts its own)."""

    def test_openrlhf_client_gets_offline_rewards(self, server, offline):
        texts = ["the cat sat on a mat", "a dog ran", "good answer yes"]
        expected = offline.score([""] * 3, texts).tolist()

        async def fetch():  # OpenRLHF shards one batch over its reward URLs; here both go to the Serve proxy
            url = f"{server.url}/get_reward"
            payloads = [{"query": texts[:2], "prompts": ["", ""], "labels": [None, None]},
                        {"query": texts[2:], "prompts": [""], "labels": [None]}]
            async with httpx.AsyncClient(headers=AUTH, timeout=60) as http:
                resps = await asyncio.gather(*(http.post(url, json=p) for p in payloads))
            return [r.json() for r in resps]

        first, second = asyncio.run(fetch())
        assert first["rewards"] + second["rewards"] == pytest.approx(expected, abs=1e-5)
        assert first["scores"] == first["rewards"]


    def test_openrlhf_post_without_a_token_is_refused(self, server):
        with pytest.raises(httpx.HTTPStatusError) as e:
            asyncio.run(openrlhf_post(f"{server.url}/get_reward", {"query": ["the cat"]}))
        assert e.value.response.status_code == 401
        wrong = {"Authorization": "Bearer x"}
        assert_error(httpx.post(f"{server.url}/get_reward", json={"query": ["a"]}, headers=wrong), 401,
                     "invalid bearer token")
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # liveness needs no token


    def test_vllm_classify_as_verl_reads_it(self, server, offline):
        raw = offline.score([""], ["the cat sat"]).item()
        body = httpx.post(f"{server.url}/classify", json={"model": "m", "input": "the cat sat", "activation": False},
                          headers=AUTH).json()
        assert body["data"][-1]["probs"][-1] == pytest.approx(raw, abs=1e-5)
        chat = httpx.post(f"{server.url}/classify", json={"messages": CHAT_P + CHAT_R, "use_activation": False},
                          headers=AUTH).json()
        assert chat["data"][0]["probs"][0] == pytest.approx(offline.score([CHAT_P], [CHAT_R]).item(), abs=1e-5)


    def test_native_score_through_the_trl_reward_function(self, server, offline):
        from rewardlab.serve.client import make_reward_func

        prompts, completions = ["the", "a dog", CHAT_P], ["cat sat", "ran on a mat", CHAT_R]
        reward_func = make_reward_func(server.url, token=TOKEN)
        try:
            got = reward_func(prompts=prompts, completions=completions, trainer_state=None)
        finally:
            reward_func.reward.close()
        assert got == pytest.approx(offline.score(prompts, completions).tolist(), abs=1e-5)
        assert httpx.get(f"{server.url}/v1/models", headers=AUTH).json()["data"][0]["id"] == "tiny-rm"


    def test_limits_are_413_or_422(self, server):
        def post(path: str, headers: dict | None = None, **kw) -> httpx.Response:
            return httpx.post(f"{server.url}{path}", headers={**AUTH, **(headers or {})}, **kw)

        assert_error(post("/get_reward", json={"query": ["a"] * 9}), 413, "at most 8")
        assert_error(post("/get_reward", json={"query": ["ok", "the cat sat " * 100]}), 422, "item 1 has")
        assert_error(post("/v1/score", json={"items": [{"prompt": "the cat sat " * 100, "response": "x"}]}), 422,
                     "max-item-tokens")
        assert_error(post("/get_reward", content=b'{"query": ["' + b"x" * 30_000 + b'"]}',
                          headers={"content-type": "application/json"}), 413, "too large")
        assert_error(post("/v1/score", json={"items": [{"prompt": "x"}]}), 422, "items.0.response")
        assert post("/get_reward", json={"query": ["still up"]}).status_code == 200

    def test_requests_are_spread_over_both_replicas(self, server):
        """Each replica counts its own requests (/metrics answers for the replica that got it): after 40 concurrent
        /v1/compare requests, concurrent polls of /metrics show two counts, both > 0, that add up to 40
        (or one count, 20, when the split is even: both replicas then report the same number)."""
        import re

        async def burst():
            async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=60) as http:
                items = [{"prompt": "the", "a": "cat", "b": "dog"}]
                resps = await asyncio.gather(*(http.post("/v1/compare", json={"items": items}) for _ in range(40)))
            assert all(r.status_code == 200 for r in resps)

        asyncio.run(burst())
        pattern = re.compile(r'^rewardlab_requests_total\{endpoint="/v1/compare",status="200"\} ([0-9.]+)$', re.M)
        async def poll() -> set[float]:  # concurrent polls, as sequential ones may all be routed to one replica
            async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=60) as http:
                resps = await asyncio.gather(*(http.get("/metrics") for _ in range(8)))
            return {float(m.group(1)) if (m := pattern.search(r.text)) else 0.0 for r in resps}

        def seen_both(counts: set[float]) -> bool:  # an even split shows one value, 20, from both replicas
            return len(counts) == 2 or counts == {20.0}

        counts: set[float] = set()
        for _ in range(20):
            counts |= asyncio.run(poll())
            if seen_both(counts):
                break
        assert seen_both(counts) and min(counts) > 0 and (sum(counts) == 40 or counts == {20.0}), counts


def test_a_replica_user_error_reaches_the_driver():
    from rewardlab.serve.ray_serve import RayServer

    def load_bad():  # runs in the replica
        from rewardlab.errors import UserError

        raise UserError("tiny-rm: --normalize needs 'normalization' stats", "second line")

    with pytest.raises(UserError) as e:
        RayServer(load_bad).start()
    assert e.value.lines() == ["tiny-rm: --normalize needs 'normalization' stats", "second line"]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "the Ray Serve app did not come up"
        time.sleep(0.5)


def _read_line(proc: subprocess.Popen, timeout_s: float = 60) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout_s), "no output from the server"
    return proc.stdout.readline()


def test_cli_serves_on_the_cluster_until_sigterm(checkpoint, offline, tmp_path):
    """`rewardlab serve CKPT --engine ray --replicas 1` joins this cluster ($RAY_ADDRESS), answers with a token
    from --token-file, and deletes its app on SIGTERM."""
    from rewardlab.serve.ray_serve import free_port

    (tmp_path / "token").write_text("t0ken\n")
    port = free_port()
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address, REWARDLAB_TOKEN="")
    proc = subprocess.Popen([sys.executable, "-m", "rewardlab.cli", "serve", str(checkpoint), "--engine", "ray",
                             "--replicas", "1", "--port", str(port), "--token-file", str(tmp_path / "token"),
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        assert "1 Ray Serve replicas at http://127.0.0.1" in _read_line(proc)  # deployed: serve.run has returned
        assert httpx.post(f"{url}/get_reward", json={"query": ["the cat"]}).status_code == 401
        body = httpx.post(f"{url}/get_reward", json={"query": ["the cat", "a dog sat"]},
                          headers={"Authorization": "Bearer t0ken"}).json()
        assert body["rewards"] == pytest.approx(offline.score(["", ""], ["the cat", "a dog sat"]).tolist(), abs=1e-5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err  # SIGTERM: the app deleted, exit 0
    from ray import serve

    assert "rewardlab" not in serve.status().applications  # deleted on SIGTERM
    serve.shutdown()


def test_cli_refuses_a_public_bind_without_a_token_before_ray(checkpoint, cli, monkeypatch):
    monkeypatch.setenv("REWARDLAB_TOKEN", "")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens: reaching Ray would fail differently
    code, _, err = cli("serve", str(checkpoint), "--engine", "ray", "--host", "0.0.0.0")
    assert code == 2 and "refusing to bind '0.0.0.0' without a token" in err
    code, _, err = cli("serve", str(checkpoint), "--engine", "ray", "--replicas", "0")
    assert code == 2 and "--replicas >= 1 (got 0)" in err
