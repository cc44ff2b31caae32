"""RemoteReward: a :class:`~rewardlab.rewards.base.Reward` scored by a reward server over HTTP.

Two protocols:
- ``native`` (a rewardlab server, ``POST /v1/score``): plain or conversational items; ``[n, k]`` rows when the
  server's reward has k > 1 outputs (asked with ``members``), else ``[n]``;
- ``openrlhf`` (any OpenRLHF-compatible server, ``POST /get_reward``): plain text only, sent as the full text
  ``prompt + response`` in ``query``; returns ``rewards`` as ``[n]``.

:class:`RewardClient` holds the HTTP details: an ``httpx.Client`` with timeouts, a bearer token, items sent in chunks
of ``chunk_size``, and retries with exponential backoff on connection errors, timeouts and 5xx -- never on 4xx,
which raise :class:`RemoteError` at once with the server's message. A 503 with ``Retry-After`` (an overloaded
rewardlab server) waits at least that many seconds (at most ``max_retry_after_s``) before the next try.

:class:`RemoteReward` declares what the server reports: ``batch_invariant`` from a rewardlab server's ``/health``
(native protocol; an OpenRLHF server is assumed batch-invariant), and ``uses_labels`` for the OpenRLHF protocol,
whose ``labels`` it forwards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response

RETRY_STATUS = frozenset({500, 502, 503, 504})


class RemoteError(RuntimeError):
    """The server refused a request (4xx) or kept failing after all retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RewardClient:
    """HTTP client for a reward server. ``base_url`` like ``http://127.0.0.1:5000`` (a trailing path is dropped
    for the known endpoints: ``http://host:5000/get_reward`` works too)."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 180.0, retries: int = 4,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, chunk_size: int = 256, transport: Any = None,
                 max_retry_after_s: float = 30.0):
        import httpx

        base = base_url.rstrip("/")
        for suffix in ("/get_reward", "/v1/score", "/classify"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.base_url = base
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.chunk_size = chunk_size
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0),
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """One call with retries; returns the decoded JSON body."""
        import httpx

        last: Exception | None = None
        wait_s = 0.0  # the server's Retry-After, if it sent one
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(max(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s), wait_s))
            try:
                resp = self._http.request(method, path, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as e:  # connect/read errors, timeouts
                last, wait_s = e, 0.0
                continue
            if resp.status_code in RETRY_STATUS:
                last = RemoteError(f"{method} {path}: HTTP {resp.status_code}: {_message(resp)}", resp.status_code)
                wait_s = min(_retry_after(resp), self.max_retry_after_s)
                continue
            if resp.status_code >= 400:
                raise RemoteError(f"{method} {path}: HTTP {resp.status_code}: {_message(resp)}", resp.status_code)
            return resp.json()
        raise RemoteError(f"{method} {self.base_url}{path} failed after {self.retries + 1} tries: {last}",
                          getattr(last, "status", None))

    # ------------------------------------------------------------------ endpoints
    def health(self) -> dict:
        return self.request("GET", "/health")

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response], normalize: bool = False,
              members: bool = False) -> dict[str, list]:
        """Native ``/v1/score``; results of all chunks concatenated: ``scores`` (+ ``normalized``, ``members``)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        out: dict[str, list] = {"scores": [], "normalized": [], "members": []}
        for s in range(0, len(prompts), self.chunk_size):
            items = [{"prompt": p, "response": r} for p, r in zip(prompts[s : s + self.chunk_size],
                                                                    responses[s : s + self.chunk_size], strict=True)]
            body = self.request("POST", "/v1/score", {"items": items, "normalize": normalize, "members": members})
            for key in out:
                out[key] += body.get(key) or []
        return out

    def compare(self, prompts: Sequence[Prompt], a: Sequence[Response], b: Sequence[Response]) -> list[float]:
        """Native ``/v1/compare``: P(a preferred over b) per item."""
        probs: list[float] = []
        for s in range(0, len(prompts), self.chunk_size):
            items = [{"prompt": p, "a": x, "b": y} for p, x, y in zip(
                prompts[s : s + self.chunk_size], a[s : s + self.chunk_size], b[s : s + self.chunk_size], strict=True)]
            probs += self.request("POST", "/v1/compare", {"items": items})["prob_a"]
        return probs

    def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                   labels: Sequence[Any] | None = None) -> list[float]:
        """OpenRLHF ``/get_reward`` on full texts; returns ``rewards``."""
        rewards: list[float] = []
        for s in range(0, len(queries), self.chunk_size):
            q = list(queries[s : s + self.chunk_size])
            body = {"query": q, "prompts": list(prompts[s : s + len(q)]) if prompts is not None else [""] * len(q),
                    "labels": list(labels[s : s + len(q)]) if labels is not None else [""] * len(q)}
            rewards += self.request("POST", "/get_reward", body)["rewards"]
        return rewards


def _retry_after(resp) -> float:
    """``Retry-After`` in seconds (the delay-seconds form; an HTTP date or garbage counts as 0)."""
    try:
        return max(0.0, float(resp.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0


def _message(resp) -> str:
    try:
        body = resp.json()
        return body.get("error", {}).get("message") or str(body)
    except ValueError:
        return resp.text[:200]


class RemoteReward:
    """A Reward served elsewhere. ``protocol="native"`` (rewardlab server) or ``"openrlhf"`` (full texts)."""

    def __init__(self, url: str, token: str | None = None, protocol: str = "native", **client_kwargs):
        if protocol not in ("native", "openrlhf"):
            raise ValueError(f"protocol must be 'native' or 'openrlhf', got {protocol!r}")
        self.client = RewardClient(url, token=token, **client_kwargs)
        self.protocol = protocol
        self.name = f"remote:{self.client.base_url}"
        self.uses_labels = protocol == "openrlhf"
        self._num_outputs: int | None = None
        self._batch_invariant: bool | None = None

    @property
    def num_outputs(self) -> int:
        if self._num_outputs is None:
            self._num_outputs = int(self.client.health().get("num_outputs", 1)) if self.protocol == "native" else 1
        return self._num_outputs

    @property
    def batch_invariant(self) -> bool:
        if self._batch_invariant is None:
            self._batch_invariant = (bool(self.client.health().get("batch_invariant", True))
                                     if self.protocol == "native" else True)
        return self._batch_invariant

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response],
              labels: Sequence[Any] | None = None) -> torch.Tensor:
        """Scores from the server; ``labels`` are sent with the openrlhf protocol (the native one has none)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if self.protocol == "openrlhf":
            if not all(isinstance(x, str) for x in (*prompts, *responses)):
                raise ValueError("the openrlhf protocol takes plain text; use protocol='native' for conversations")
            values = self.client.get_reward([p + r for p, r in zip(prompts, responses, strict=True)], list(prompts),
                                            labels)
            return _tensor(values)
        multi = self.num_outputs > 1
        out = self.client.score(prompts, responses, members=multi)
        return _tensor(out["members"] if multi else out["scores"])

    def close(self) -> None:
        self.client.close()


def _tensor(values: list) -> torch.Tensor:
    """JSON numbers (null for a non-finite score) -> float32 tensor with NaN for null."""
    def f(v):
        return float("nan") if v is None else float(v)
    if values and isinstance(values[0], list):
        return torch.tensor([[f(v) for v in row] for row in values], dtype=torch.float32)
    return torch.tensor([f(v) for v in values], dtype=torch.float32)
