"""Server metrics in the Prometheus text exposition format (version 0.0.4), without a client library.

Counters: ``rewardlab_requests_total{endpoint,status}``, ``rewardlab_items_total{endpoint}``,
``rewardlab_batches_total``, ``rewardlab_truncated_items_total`` (model rewards: items cut to max_length).
Histograms: ``rewardlab_request_seconds{endpoint}``, ``rewardlab_batch_items``, ``rewardlab_batch_requests``,
``rewardlab_batch_tokens``, ``rewardlab_batch_seconds``. Gauges: ``rewardlab_queue_requests``,
``rewardlab_queue_tokens`` (what the queue cap counts), ``rewardlab_inflight_requests``. All updates happen on
the event loop thread (the batcher reports from there).
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    esc = [str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values]
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, esc, strict=True)) + "}"


class Histogram:
    def __init__(self, name: str, help_: str, buckets: Sequence[float], labels: Sequence[str] = ()):
        self.name, self.help, self.buckets, self.label_names = name, help_, tuple(buckets), tuple(labels)
        self._counts: dict[tuple, list[int]] = {}
        self._sum: dict[tuple, float] = defaultdict(float)

    def observe(self, value: float, *labels: str) -> None:
        counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self._sum[labels] += value

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, counts in sorted(self._counts.items()):
            running = 0
            for bound, c in zip((*self.buckets, float("inf")), counts, strict=True):
                running += c
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                out.append(f"{self.name}_bucket{_labels((*self.label_names, 'le'), (*labels, le))} {running}")
            out.append(f"{self.name}_sum{_labels(self.label_names, labels)} {self._sum[labels]!r}")
            out.append(f"{self.name}_count{_labels(self.label_names, labels)} {running}")
        return out


class Counter:
    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help_, tuple(labels)
        self._values: dict[tuple, float] = defaultdict(float)

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self._values[labels] += by

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_labels(self.label_names, k)} {v!r}" for k, v in sorted(self._values.items())]
        return out


class Gauge:
    """A value read when scraped (``kind="counter"`` for a monotonic count kept elsewhere)."""

    def __init__(self, name: str, help_: str, read: Callable[[], float], kind: str = "gauge"):
        self.name, self.help, self.read, self.kind = name, help_, read, kind

    def lines(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}",
                f"{self.name} {float(self.read())!r}"]


class ServerMetrics:
    """The metrics the reward server exports."""

    def __init__(self, queue_depth: Callable[[], float], truncated: Callable[[], float] | None = None,
                 queue_tokens: Callable[[], float] | None = None):
        self.inflight = 0
        self.requests = Counter("rewardlab_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"))
        self.items = Counter("rewardlab_items_total", "Items scored, by endpoint.", ("endpoint",))
        self.batches = Counter("rewardlab_batches_total", "Batches run by the dynamic batcher.")
        self.latency = Histogram("rewardlab_request_seconds", "Request latency in seconds.", LATENCY_BUCKETS,
                                 ("endpoint",))
        self.batch_items = Histogram("rewardlab_batch_items", "Items per batch.", SIZE_BUCKETS)
        self.batch_requests = Histogram("rewardlab_batch_requests", "Requests merged per batch.", SIZE_BUCKETS)
        self.batch_tokens = Histogram("rewardlab_batch_tokens", "Tokens per batch.", TOKEN_BUCKETS)
        self.batch_seconds = Histogram("rewardlab_batch_seconds", "Reward compute time per batch.", LATENCY_BUCKETS)
        self._gauges = [
            Gauge("rewardlab_queue_requests", "Requests waiting for a batch.", queue_depth),
            Gauge("rewardlab_inflight_requests", "Requests being handled.", lambda: self.inflight),
        ]
        if queue_tokens is not None:
            self._gauges.insert(1, Gauge("rewardlab_queue_tokens", "Tokens (item costs) waiting for a batch.",
                                         queue_tokens))
        if truncated is not None:
            self._gauges.append(Gauge("rewardlab_truncated_items_total", "Items cut to the model's max_length.",
                                      truncated, kind="counter"))

    def on_batch(self, stats) -> None:
        self.batches.inc()
        self.batch_items.observe(stats.items)
        self.batch_requests.observe(stats.requests)
        self.batch_tokens.observe(stats.tokens)
        self.batch_seconds.observe(stats.seconds)

    def render(self) -> str:
        parts = [self.requests, self.items, self.batches, self.latency, self.batch_items, self.batch_requests,
                 self.batch_tokens, self.batch_seconds, *self._gauges]
        return "\n".join(line for p in parts for line in p.lines()) + "\n"


class MeteredApp:
    """ASGI wrapper: counts requests by endpoint/status and times them."""

    def __init__(self, app, metrics: ServerMetrics, endpoints: set[str]):
        self.app, self.metrics, self.endpoints = app, metrics, endpoints

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        status = [500]

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        self.metrics.inflight += 1
        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            self.metrics.inflight -= 1
            self.metrics.requests.inc(endpoint, str(status[0]))
            self.metrics.latency.observe(time.perf_counter() - t0, endpoint)
