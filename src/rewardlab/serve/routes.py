"""The reward server's scoring endpoints (OpenRLHF, vLLM-compatible, native), added to the FastAPI app of
:func:`rewardlab.serve.app.create_app` by :func:`add_scoring_routes`. Wire formats and their sources:
:mod:`rewardlab.serve.protocols`.

- ``POST /get_reward`` (OpenRLHF): ``{"query": [full text], "prompts", "labels"}`` -> ``{"rewards", "scores",
  "extra_logs"}``; no chat template is applied to ``query``; a query that starts with its prompt is scored as
  (prompt, rest); labels go to rewards that use them (:mod:`rewardlab.serve.scorer`).
- ``POST /classify``, ``POST /pooling``, ``POST /score``, ``GET /v1/models`` (vLLM-compatible). Serving a process
  reward model, ``/pooling`` answers like vLLM's STEP pooler: per input, ``data`` = one ``[p_neg, p_pos]`` row per
  step (softmax on unless ``use_activation: false``).
- ``POST /v1/score`` (native, plain or conversational items; optional normalized and per-output scores, and per-step
  rewards of a process reward model with ``"steps": true`` -> ``step_rewards``), ``POST /v1/compare``
  (``P(a > b) = sigmoid(r_a - r_b)``) and ``POST /v1/inspect`` (an ArmoRM-style reward's per-attribute scores).

vLLM request fields rewardlab does not act on (``model``, ``truncate_prompt_tokens``, ``user``, ``priority``, ...)
are accepted and ignored: over-long items are truncated like offline scoring, and ``model`` never selects or loads
anything. No endpoint loads a file or model named by the client.

Preparation (parsing limits, tokenizing) runs off the event loop on two thread pools: requests up to
:data:`SMALL_REQUEST_CHARS` characters on ``prep_workers`` threads (default 1), larger ones on one thread of their
own, so a big request never delays small ones (HF fast tokenizers release the GIL while encoding). Scoring goes
through the app's one dynamic batcher (:mod:`rewardlab.serve.batcher`).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from rewardlab.serve import protocols as P
from rewardlab.serve.metrics import ServerMetrics
from rewardlab.serve.scorer import InputError, Prepared, ServedReward

SMALL_REQUEST_CHARS = 64 * 1024  # requests up to this many characters are prepared on the small-request pool


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clean(t: torch.Tensor) -> list:
    """Tensor -> JSON-safe nested lists (non-finite values become null instead of breaking the encoder)."""
    data = t.tolist()
    if t.ndim == 1:
        return [_num(v) for v in data]
    return [[_num(v) for v in row] for row in data]


def step_rows(probs: list[float], activation: bool = True) -> list[list[float | None]]:
    """vLLM STEP-pooler rows of a PRM's step rewards ``p_j``: ``[1 − p_j, p_j]`` (the softmax over its two labels),
    or with ``activation`` off logits ``[0, log(p_j / (1 − p_j))]`` (same softmax); NaN (truncated) -> nulls."""
    out: list[list[float | None]] = []
    for p in probs:
        if math.isnan(p):
            out.append([None, None])
        elif activation:
            out.append([1.0 - p, p])
        else:
            out.append([0.0, _num(math.log(p) - math.log1p(-p)) if 0.0 < p < 1.0 else None])
    return out


def _size(x: Any) -> int:
    """Characters (or token ids) in a request's texts: what routes it to the small or the large preparation pool."""
    if isinstance(x, str):
        return len(x)
    if isinstance(x, (list, tuple)):
        return len(x) if x and isinstance(x[0], int) else sum(_size(v) for v in x)  # token ids: no walk
    if isinstance(x, dict):
        return sum(_size(v) for v in x.values())
    return 1


def add_scoring_routes(app: FastAPI, served: ServedReward, state: dict[str, Any], metrics: ServerMetrics, *,
                       max_items: int, normalize: bool) -> None:
    """Add the scoring endpoints (see the module docstring) to ``app``. ``state`` holds what the app's lifespan
    starts: the batcher (``"batcher"``) and the two preparation pools (``"prep"``, ``"prep_large"``); ``max_items``
    (``--max-items``) caps the items of one request, ``normalize`` applies the manifest's normalization to
    ``/get_reward`` and ``/classify``."""
    # ------------------------------------------------------------------ helpers
    def check_count(n: int, what: str) -> None:
        if n > max_items:
            raise InputError(f"{n} {what} in one request; this server accepts at most {max_items} (--max-items)",
                             413, param=what)

    async def prepare(fn, *args) -> Prepared:
        pool = state["prep"] if _size(args) <= SMALL_REQUEST_CHARS else state["prep_large"]
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

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
        rows = await score(await prepare(served.prepare_texts, body.query, body.prompts, body.labels), "/get_reward")
        raw = served.scalar(rows)
        norm = served.normalize(raw) if normalize else None
        rewards = _clean(norm if norm is not None else raw)
        extra = {"raw_reward": _clean(raw)}
        m = served.matrix(rows)
        if m.shape[1] > 1:
            extra.update({f"reward_{j}": _clean(m[:, j]) for j in range(m.shape[1])})
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": extra})

    # ------------------------------------------------------------------ vLLM-compatible
    async def pooled(body: P.ClassifyRequest, endpoint: str) -> tuple[torch.Tensor, int]:
        rows, tokens = await pooled_rows(body, endpoint)
        return served.matrix(rows), tokens

    async def pooled_rows(body: P.ClassifyRequest, endpoint: str) -> tuple[torch.Tensor, int]:
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
        return await score(prepared, endpoint), prepared.tokens

    def usage(tokens: int) -> dict:
        return {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": None}

    @app.post("/classify", response_model=P.ClassifyResponse, tags=["vLLM"])
    async def classify(body: P.ClassifyRequest):
        m, tokens = await pooled(body, "/classify")
        if normalize and m.shape[1] == 1 and served.normalization:
            m = served.normalize(m)
        probs = activate(m) if body.activation_on() and len(m) else m
        data = [{"index": i, "label": f"LABEL_{int(row.argmax())}", "probs": _clean(row), "num_classes": len(row)}
                for i, row in enumerate(probs)]
        if served.is_prm:  # the aggregate is already P(correct): [1 − p, p], or logits [0, log-odds] without activation
            data = [{"index": i, "label": f"LABEL_{int(p >= 0.5)}", "probs": step_rows([p], body.activation_on())[0],
                     "num_classes": 2} for i, p in enumerate(m[:, 0].tolist())]
        return JSONResponse(P.ClassifyResponse(model=served.name, data=[], usage=P.UsageInfo()).model_dump()
                            | {"data": data, "usage": usage(tokens)})

    @app.post("/pooling", response_model=P.PoolingResponse, tags=["vLLM"])
    async def pooling(body: P.ClassifyRequest):
        if served.is_prm:  # vLLM's STEP pooler: one [p_neg, p_pos] row per step (softmax unless use_activation off)
            rows, tokens = await pooled_rows(body, "/pooling")
            steps = served.steps(rows) if len(rows) else []
            data = [{"index": i, "object": "pooling", "data": step_rows(s, body.use_activation is not False)}
                    for i, s in enumerate(steps)]
            return JSONResponse(P.PoolingResponse(model=served.name, data=[], usage=P.UsageInfo()).model_dump()
                                | {"data": data, "usage": usage(tokens)})
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
        if body.steps and not served.is_prm:
            raise InputError("per-step rewards need a process reward model (serve a prm: reward); ask without "
                             "'steps'", 422, param="steps")
        members = served.is_ensemble if body.members is None else body.members  # an ensemble's by default
        out: dict[str, Any] = {"model": served.name, "scores": [], "normalized": None, "members": None}
        if members and served.is_ensemble:
            out["member_names"] = served.member_names()
        if body.steps:
            out["step_rewards"] = []
        if not body.items:
            out.update(normalized=[] if body.normalize else None, members=[] if members else None)
            return JSONResponse(out)
        prompts = [P.to_plain(it.prompt) for it in body.items]
        responses = [P.to_plain(it.response) for it in body.items]
        rows = await score(await prepare(served.prepare_pairs, prompts, responses), "/v1/score")
        raw = served.scalar(rows)
        out["scores"] = _clean(raw)
        if body.normalize:
            out["normalized"] = _clean(served.normalize(raw))
        if members:
            out["members"] = _clean(served.matrix(rows))
            if served.is_ensemble:  # the widths of k-output members are known once scored
                out["member_names"] = served.member_names()
        if body.steps:
            out["step_rewards"] = [[_num(v) for v in s] for s in served.steps(rows)]
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

        def checked_inspect(ps, rs):
            served.check_pairs(ps, rs)
            return fn(ps, rs)

        result = await prepare(checked_inspect, prompts, responses)
        out = {k: _clean(v) if isinstance(v, torch.Tensor) else v for k, v in result.items()}
        return JSONResponse({"model": served.name, **out})
