"""`rewardlab serve CKPT`: one command starts a working, authenticated server; bad setups exit 2 before binding."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model

    out = tmp_path_factory.mktemp("ckpt") / "tiny-rm"
    save_reward_model(tiny_reward_model(tokenizer, seed=3), tokenizer, out, manifest={"max_length": 64})
    return out


def _serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "rewardlab.cli", "serve", *args]


def test_serve_command_end_to_end(checkpoint, tmp_path):
    from rewardlab.rewards.model import ModelReward

    token_file = tmp_path / "token"
    token_file.write_text("t0ken-from-file\n")
    port = _free_port()
    env = dict(os.environ, REWARDLAB_TOKEN="")
    proc = subprocess.Popen(_serve(str(checkpoint), "--port", str(port), "--token-file", str(token_file),
                                   "--log-level", "warning"), env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, "server did not start"
            time.sleep(0.2)
        assert httpx.post(f"{url}/get_reward", json={"query": ["the cat"]}).status_code == 401
        auth = {"Authorization": "Bearer t0ken-from-file"}
        body = httpx.post(f"{url}/get_reward", json={"query": ["the cat", "a dog sat"]}, headers=auth).json()
        expected = ModelReward.from_pretrained(checkpoint).score(["", ""], ["the cat", "a dog sat"]).tolist()
        assert body["rewards"] == pytest.approx(expected, abs=1e-5)
        assert httpx.get(f"{url}/v1/models", headers=auth).json()["data"][0]["id"] == "tiny-rm"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the captured SIGTERM so the exit status reports it
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in err, err
    assert "bearer token required" in err


def test_serve_refuses_public_bind_without_token_and_bad_flags(checkpoint):
    env = dict(os.environ, REWARDLAB_TOKEN="")
    r = subprocess.run(_serve(str(checkpoint), "--host", "0.0.0.0"), env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "refusing to bind '0.0.0.0' without a token" in r.stderr
    r = subprocess.run(_serve(str(checkpoint), "--normalize"), env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "normalization" in r.stderr
    r = subprocess.run(_serve(str(checkpoint), "--token-file", "/nonexistent/token"), env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "cannot read the token file" in r.stderr
    r = subprocess.run(_serve(str(checkpoint), "--header-timeout", "0", "--max-body-mb", "-1", "--max-queue-tokens",
                              "0"), env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    for line in ("--header-timeout: must be positive, got 0.0", "--max-body-mb: must be positive",
                 "--max-queue-tokens: must be positive, got 0"):
        assert line in r.stderr, r.stderr
