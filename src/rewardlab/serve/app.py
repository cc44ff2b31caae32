"""The reward server (FastAPI): OpenRLHF, vLLM-compatible and native endpoints over one dynamic batcher.

Endpoints (wire formats and their sources: :mod:`rewardlab.serve.protocols`):

- ``POST /get_reward`` (OpenRLHF): ``{"query": [full text], "prompts", "labels"}`` -> ``{"rewards", "scores",
  "extra_logs"}``; no chat template is applied to ``query``.
- ``POST /classify``, ``POST /pooling``, ``POST /score``, ``GET /v1/models`` (vLLM-compatible).
- ``POST /v1/score`` (native, plain or conversational items; optional normalized and per-output scores) and
  ``POST /v1/compare`` (``P(a > b) = sigmoid(r_a - r_b)``).
- ``GET /health`` (no auth), ``GET /metrics`` (Prometheus text).

vLLM request fields rewardlab does not act on (``model``, ``truncate_prompt_tokens``, ``user``, ``priority``, ...)
are accepted and ignored: over-long items are truncated like offline scoring, and ``model`` never selects or loads
anything. No endpoint loads a file or model named by the client.

Every client error is a 4xx with ``{"error": {"message", "type", "param", "code"}}``: malformed JSON 400, missing
or wrong token 401, body over the limit 413, too many items 413, wrong types or too many tokens per item 422.
Shutdown drains: queued and running batches finish before the worker stops (uvicorn first waits for in-flight
requests).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardlab.errors import UserError
from rewardlab.serve import protocols as P
from rewardlab.serve.batcher import DynamicBatcher, ShuttingDown
from rewardlab.serve.metrics import ServerMetrics
from rewardlab.serve.scorer import InputError, Prepared, ServedReward
from rewardlab.serve.security import Guard

log = logging.getLogger("rewardlab.serve")


@dataclass
class ServeConfig:
    """Limits and batching knobs (CLI flags of ``rewardlab serve``)."""

    token: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_items: int = 1024
    max_item_tokens: int = 16384
    max_batch_tokens: int = 16384
    max_batch_items: int = 256
    max_wait_ms: float = 5.0
    normalize: bool = False  # apply the manifest's normalization to /get_reward and /classify outputs


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clean(t: torch.Tensor) -> list:
    """Tensor -> JSON-safe nested lists (non-finite values become null instead of breaking the encoder)."""
    data = t.tolist()
    if t.ndim == 1:
        return [_num(v) for v in data]
    return [[_num(v) for v in row] for row in data]


def _error(status: int, message: str, err_type: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": err_type, "param": param, "code": status}}, status)


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


class _Metered:
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


def create_app(reward: Any, config: ServeConfig | None = None, name: str | None = None):
    """An ASGI app serving ``reward`` (any Reward). Wrap order: metrics -> guard (auth, body limit) -> FastAPI."""
    cfg = config or ServeConfig()
    served = ServedReward(reward, name=name, max_item_tokens=cfg.max_item_tokens)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher = DynamicBatcher(served.run, cfg.max_batch_tokens, cfg.max_batch_items, cfg.max_wait_ms,
                                 on_batch=metrics.on_batch)
        await batcher.start()
        state["batcher"] = batcher
        state["prep"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-prep")
        state["draining"] = False
        served.num_outputs  # noqa: B018 - probe once at startup, not in the first request
        try:
            yield
        finally:
            state["draining"] = True
            await batcher.stop()
            state["prep"].shutdown(wait=True)

    metrics = ServerMetrics(lambda: state["batcher"].queued_requests if "batcher" in state else 0,
                            served.truncated_items if served.truncated_items() is not None else None)
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

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_req, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), "HTTPError")

    @app.exception_handler(Exception)
    async def _on_crash(_req, exc: Exception):
        log.exception("internal error")
        return _error(500, f"internal error: {type(exc).__name__}", "InternalServerError")

    # ------------------------------------------------------------------ helpers
    def check_count(n: int, what: str) -> None:
        if n > cfg.max_items:
            raise InputError(f"{n} {what} in one request; this server accepts at most {cfg.max_items} (--max-items)",
                             413, param=what)

    async def prepare(fn, *args) -> Prepared:
        return await asyncio.get_running_loop().run_in_executor(state["prep"], fn, *args)

    async def score(prepared: Prepared, endpoint: str) -> torch.Tensor:
        rows = await state["batcher"].submit(prepared.items, prepared.costs)
        metrics.items.inc(endpoint, by=len(prepared.items))
        return rows

    def activate(m: torch.Tensor) -> torch.Tensor:  # vLLM PoolerClassify: sigmoid if 1 label else softmax
        return torch.sigmoid(m) if m.shape[1] < 2 else torch.softmax(m, dim=1)

    # ------------------------------------------------------------------ OpenRLHF
    @app.post("/get_reward", response_model=P.GetRewardResponse, tags=["OpenRLHF"])
    async def get_reward(body: P.GetRewardRequest):
        check_count(len(body.query), "query")
        if not body.query:
            return JSONResponse({"rewards": [], "scores": [], "extra_logs": {}})
        rows = await score(await prepare(served.prepare_texts, body.query), "/get_reward")
        raw = served.scalar(rows)
        norm = served.normalize(raw) if cfg.normalize else None
        rewards = _clean(norm if norm is not None else raw)
        extra = {"raw_reward": _clean(raw)}
        m = served.matrix(rows)
        if m.shape[1] > 1:
            extra.update({f"reward_{j}": _clean(m[:, j]) for j in range(m.shape[1])})
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": extra})

    # ------------------------------------------------------------------ vLLM-compatible
    async def pooled(body: P.ClassifyRequest, endpoint: str) -> tuple[torch.Tensor, int]:
        if (body.input is None) == (body.messages is None):
            raise InputError("give exactly one of 'input' or 'messages'", 422, param="input")
        if body.input == []:
            return torch.zeros((0, 1)), 0
        if body.messages is not None:
            msgs = P.to_plain(body.messages)
            prepared = await prepare(served.prepare_pairs, [msgs[:-1]], [msgs[-1:]])
        elif isinstance(body.input, str) or (body.input and isinstance(body.input[0], str)):
            texts = [body.input] if isinstance(body.input, str) else body.input
            check_count(len(texts), "input")
            prepared = await prepare(served.prepare_texts, texts)
        else:
            seqs = body.input if body.input and isinstance(body.input[0], list) else [body.input]
            check_count(len(seqs), "input")
            prepared = await prepare(served.prepare_ids, seqs)
        if not prepared.items:
            return torch.zeros((0, 1)), 0
        return served.matrix(await score(prepared, endpoint)), prepared.tokens

    def usage(tokens: int) -> dict:
        return {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": None}

    @app.post("/classify", response_model=P.ClassifyResponse, tags=["vLLM"])
    async def classify(body: P.ClassifyRequest):
        m, tokens = await pooled(body, "/classify")
        if cfg.normalize and m.shape[1] == 1 and served.normalization:
            m = served.normalize(m)
        probs = activate(m) if body.activation_on() and len(m) else m
        data = [{"index": i, "label": f"LABEL_{int(row.argmax())}", "probs": _clean(row), "num_classes": len(row)}
                for i, row in enumerate(probs)]
        return JSONResponse(P.ClassifyResponse(model=served.name, data=[], usage=P.UsageInfo()).model_dump()
                            | {"data": data, "usage": usage(tokens)})

    @app.post("/pooling", response_model=P.PoolingResponse, tags=["vLLM"])
    async def pooling(body: P.ClassifyRequest):
        m, tokens = await pooled(body, "/pooling")
        out = activate(m) if body.use_activation and len(m) else m  # raw head outputs unless asked
        data = [{"index": i, "object": "pooling", "data": _clean(row)} for i, row in enumerate(out)]
        return JSONResponse(P.PoolingResponse(model=served.name, data=[], usage=P.UsageInfo()).model_dump()
                            | {"data": data, "usage": usage(tokens)})

    @app.post("/score", response_model=P.VllmScoreResponse, tags=["vLLM"])
    async def vllm_score(body: P.VllmScoreRequest):
        pairs = [(body.text_1, body.text_2), (body.queries, body.documents), (body.data_1, body.data_2)]
        given = [(a, b) for a, b in pairs if a is not None or b is not None]
        if len(given) != 1 or given[0][0] is None or given[0][1] is None:
            raise InputError("give one pair of fields: text_1/text_2, queries/documents or data_1/data_2", 422)
        a, b = ([x] if isinstance(x, str) else x for x in given[0])
        if len(a) == 1 and len(b) != 1:
            a = a * len(b)
        if len(a) != len(b):
            raise InputError(f"{len(a)} first texts but {len(b)} second texts (need 1:1 or 1:N)", 422)
        check_count(len(a), "pairs")
        rows = await score(await prepare(served.prepare_pairs, a, b), "/score") if a else torch.zeros(0)
        s = served.scalar(rows)
        if body.use_activation is not False and len(s):
            s = torch.sigmoid(s)
        data = [{"index": i, "object": "score", "score": v} for i, v in enumerate(_clean(s))]
        return JSONResponse(P.VllmScoreResponse(model=served.name, data=[], usage=P.UsageInfo()).model_dump()
                            | {"data": data})

    @app.get("/v1/models", response_model=P.ModelList, tags=["vLLM"])
    async def models():
        card = P.ModelCard(id=served.name, root=served.name, max_model_len=served.max_length)
        return P.ModelList(data=[card])

    # ------------------------------------------------------------------ native
    @app.post("/v1/score", response_model=P.ScoreResponse, tags=["native"])
    async def native_score(body: P.ScoreRequest):
        check_count(len(body.items), "items")
        if body.normalize and not served.normalization:
            raise InputError("this model has no normalization stats in its manifest; ask without 'normalize'",
                             422, param="normalize")
        out: dict[str, Any] = {"model": served.name, "scores": [], "normalized": None, "members": None}
        if not body.items:
            out.update(normalized=[] if body.normalize else None, members=[] if body.members else None)
            return JSONResponse(out)
        prompts = [P.to_plain(it.prompt) for it in body.items]
        responses = [P.to_plain(it.response) for it in body.items]
        rows = await score(await prepare(served.prepare_pairs, prompts, responses), "/v1/score")
        raw = served.scalar(rows)
        out["scores"] = _clean(raw)
        if body.normalize:
            out["normalized"] = _clean(served.normalize(raw))
        if body.members:
            out["members"] = _clean(served.matrix(rows))
        return JSONResponse(out)

    @app.post("/v1/compare", response_model=P.CompareResponse, tags=["native"])
    async def compare(body: P.CompareRequest):
        check_count(2 * len(body.items), "items")
        if not body.items:
            return JSONResponse({"model": served.name, "prob_a": [], "reward_a": [], "reward_b": []})
        prompts = [P.to_plain(it.prompt) for it in body.items] * 2
        responses = [P.to_plain(it.a) for it in body.items] + [P.to_plain(it.b) for it in body.items]
        r = served.scalar(await score(await prepare(served.prepare_pairs, prompts, responses), "/v1/compare"))
        n = len(body.items)
        ra, rb = r[:n], r[n:]
        return JSONResponse({"model": served.name, "prob_a": _clean(torch.sigmoid(ra - rb)),
                             "reward_a": _clean(ra), "reward_b": _clean(rb)})

    @app.post("/v1/inspect", tags=["native"])
    async def inspect(body: P.ScoreRequest):
        """Per-attribute scores, gate weights and the final score of a multi-objective (ArmoRM-style) reward."""
        fn = getattr(served.reward, "inspect", None)
        if fn is None:
            raise InputError("the served reward has no per-attribute inspection (serve an armo: reward)", 422)
        check_count(len(body.items), "items")
        prompts = [P.to_plain(it.prompt) for it in body.items]
        responses = [P.to_plain(it.response) for it in body.items]
        result = await prepare(fn, prompts, responses)
        out = {k: _clean(v) if isinstance(v, torch.Tensor) else v for k, v in result.items()}
        return JSONResponse({"model": served.name, **out})

    # ------------------------------------------------------------------ ops
    @app.get("/health", response_model=P.Health, tags=["ops"])
    async def health():
        status = "draining" if state.get("draining") else "ok"
        queue = state["batcher"].queued_requests if "batcher" in state else 0
        return {"status": status, "model": served.name, "num_outputs": served.num_outputs, "queue": queue}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    endpoints = {r.path for r in app.routes if hasattr(r, "methods")}
    wrapped = _Metered(Guard(app, cfg.token, cfg.max_body_bytes), metrics, endpoints)
    wrapped.fastapi = app  # for tests/introspection
    wrapped.metrics = metrics
    wrapped.served = served
    return wrapped
