"""The reward server (FastAPI): OpenRLHF, vLLM-compatible and native endpoints over one dynamic batcher.

:func:`create_app` builds the app: the batcher and preparation pools (started and drained by its lifespan), the
error handlers, the scoring endpoints (:mod:`rewardlab.serve.routes`: ``/get_reward``, ``/classify``, ``/pooling``,
``/score``, ``/v1/models``, ``/v1/score``, ``/v1/compare``, ``/v1/inspect``), ``GET /health`` (no auth) and
``GET /metrics`` (Prometheus text), wrapped in metrics and the guard (auth, body limit); :class:`ServeConfig` holds
its limits.

Every client error is a 4xx with ``{"error": {"message", "type", "param", "code"}}``: malformed JSON 400, missing
or wrong token 401, body not received in time 408, body over the limit 413, too many items 413, wrong types or too
many bytes/tokens per item 422. A full queue answers 503 with ``Retry-After`` (seconds); clients should retry.
Shutdown drains: queued and running batches finish before the worker stops (uvicorn first waits for in-flight
requests).

A reward that is not batch-invariant (:func:`rewardlab.rewards.base.is_batch_invariant`) is scored one request at a
time, never mixed across clients; ``/health`` reports ``batch_invariant``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardlab.errors import UserError
from rewardlab.serve import protocols as P
from rewardlab.serve.batcher import DynamicBatcher, Overloaded, ShuttingDown
from rewardlab.serve.metrics import MeteredApp, ServerMetrics
from rewardlab.serve.routes import add_scoring_routes
from rewardlab.serve.scorer import InputError, ServedReward
from rewardlab.serve.security import Guard

log = logging.getLogger("rewardlab.serve")


@dataclass
class ServeConfig:
    """Limits, batching and connection knobs (CLI flags of ``rewardlab serve``).

    Memory bound: at most ``limit_concurrency`` requests of ``max_body_bytes`` each, and ``max_queue_tokens``
    queued for the model. The connection settings are applied by :mod:`rewardlab.serve.server`."""

    token: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_items: int = 1024
    max_item_tokens: int = 16384
    max_item_bytes: int | None = None  # None: 16 * max_item_tokens
    max_batch_tokens: int = 16384
    max_batch_items: int = 256
    max_wait_ms: float = 5.0
    max_queue_tokens: int | None = None  # None: 16 * max_batch_tokens; more queued -> 503 with Retry-After
    prep_workers: int = 1  # threads preparing small requests (large ones get one thread of their own); a second
    # one cost ~5% throughput on 2 CPUs (benchmarks/serve_load.py: ratio 0.81/0.79 with 1, 0.76/0.76 with 2)
    normalize: bool = False  # apply the manifest's normalization to /get_reward and /classify outputs
    limit_concurrency: int | None = 1024  # open connections/tasks before uvicorn answers 503
    timeout_keep_alive_s: float = 5.0  # idle keep-alive connections are closed after this
    header_timeout_s: float = 10.0  # a request head must arrive within this (slowloris guard)
    body_timeout_s: float = 60.0  # the body must arrive within this after the head (else 408)
    max_header_bytes: int = 16 * 1024  # h11 max_incomplete_event_size: a longer unfinished request head gets 400

    def __post_init__(self) -> None:
        """Every limit must be positive (waits may be 0); one line per bad field, named by its CLI flag."""
        bad = [f for f in ("max_body_bytes", "max_items", "max_item_tokens", "max_batch_tokens", "max_batch_items",
                           "prep_workers", "header_timeout_s", "body_timeout_s", "max_header_bytes",
                           "max_item_bytes", "max_queue_tokens", "limit_concurrency")
               if getattr(self, f) is not None and not getattr(self, f) > 0]
        bad += [f for f in ("max_wait_ms", "timeout_keep_alive_s") if not getattr(self, f) >= 0]
        if bad:
            raise UserError(*(f"--{FLAGS.get(f, f.removesuffix('_s')).replace('_', '-')}: must be "
                              f"{'>= 0' if f in ('max_wait_ms', 'timeout_keep_alive_s') else 'positive'}, got "
                              f"{getattr(self, f)!r}" for f in bad))


FLAGS = {"max_body_bytes": "max_body_mb", "max_header_bytes": "max_header_kb"}  # ServeConfig field -> CLI flag


def _error(status: int, message: str, err_type: str, param: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": err_type, "param": param, "code": status}}, status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = next((e.get("ctx", {}).get("error", "") for e in errors if e.get("type") == "json_invalid"), "")
        return 400, f"malformed JSON body: {ctx}".rstrip(": ")
    first = errors[0] if errors else {}
    if len(errors) == 1 and first.get("type") == "model_attributes_type" and tuple(first.get("loc", ())) == ("body",):
        return 422, "the request body must be a JSON object (send it with Content-Type: application/json)"
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "invalid request: " + "; ".join(parts) + more


def create_app(reward: Any, config: ServeConfig | None = None, name: str | None = None):
    """An ASGI app serving ``reward`` (any Reward). Wrap order: metrics -> guard (auth, body limit) -> FastAPI."""
    cfg = config or ServeConfig()
    served = ServedReward(reward, name=name, max_item_tokens=cfg.max_item_tokens, max_item_bytes=cfg.max_item_bytes)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher = DynamicBatcher(served.run, cfg.max_batch_tokens, cfg.max_batch_items, cfg.max_wait_ms,
                                 on_batch=metrics.on_batch, merge=served.batch_invariant,
                                 max_queue_tokens=cfg.max_queue_tokens or 16 * cfg.max_batch_tokens)
        await batcher.start()
        state["batcher"] = batcher
        state["prep"] = ThreadPoolExecutor(max_workers=cfg.prep_workers, thread_name_prefix="rewardlab-prep")
        state["prep_large"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-prep-large")
        state["draining"] = False
        served.num_outputs  # noqa: B018 - probe once at startup, not in the first request
        if not served.batch_invariant:
            log.warning("%s is not batch-invariant: each request is scored alone, its scores depend on what the "
                        "request holds", served.name)
        try:
            yield
        finally:
            state["draining"] = True
            await batcher.stop()
            state["prep"].shutdown(wait=True)
            state["prep_large"].shutdown(wait=True)

    metrics = ServerMetrics(lambda: state["batcher"].queued_requests if "batcher" in state else 0,
                            served.truncated_items if served.truncated_items() is not None else None,
                            lambda: state["batcher"].queued_tokens if "batcher" in state else 0)
    app = FastAPI(title="rewardlab reward server", version="1", lifespan=lifespan,
                  description="Reward scoring over OpenRLHF, vLLM-compatible and native protocols.")

    @app.exception_handler(RequestValidationError)
    async def _on_validation(_req, exc: RequestValidationError):
        status, message = _validation_message(exc)
        return _error(status, message, "BadRequestError" if status == 400 else "ValidationError")

    @app.exception_handler(InputError)
    async def _on_input(_req, exc: InputError):
        return _error(exc.status, str(exc), "RequestTooLargeError" if exc.status == 413 else "ValidationError",
                      exc.param)

    @app.exception_handler(UserError)
    async def _on_user_error(_req, exc: UserError):  # e.g. a verifiable rule missing its reference answer
        return _error(422, "; ".join(exc.problems), "ValidationError")

    @app.exception_handler(ShuttingDown)
    async def _on_shutdown(_req, exc: ShuttingDown):
        return _error(503, str(exc), "ServiceUnavailableError")

    @app.exception_handler(Overloaded)
    async def _on_overload(_req, exc: Overloaded):
        return _error(503, str(exc), "ServiceUnavailableError", headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_req, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), "HTTPError")

    @app.exception_handler(Exception)
    async def _on_crash(_req, exc: Exception):
        log.exception("internal error")
        return _error(500, f"internal error: {type(exc).__name__}", "InternalServerError")

    add_scoring_routes(app, served, state, metrics, max_items=cfg.max_items, normalize=cfg.normalize)

    # ------------------------------------------------------------------ ops
    @app.get("/health", response_model=P.Health, tags=["ops"])
    async def health():
        status = "draining" if state.get("draining") else "ok"
        queue = state["batcher"].queued_requests if "batcher" in state else 0
        return {"status": status, "model": served.name, "num_outputs": served.num_outputs, "queue": queue,
                "batch_invariant": served.batch_invariant}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    endpoints = {r.path for r in app.routes if hasattr(r, "methods")}
    wrapped = MeteredApp(Guard(app, cfg.token, cfg.max_body_bytes, cfg.body_timeout_s), metrics, endpoints)
    wrapped.fastapi = app  # for tests/introspection
    wrapped.metrics = metrics
    wrapped.served = served
    return wrapped
