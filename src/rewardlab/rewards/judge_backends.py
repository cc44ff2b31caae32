"""Backends for generative judges: a causal LM that reads a judge prompt and answers.

A backend does two things for :class:`~rewardlab.rewards.judge.JudgeReward`:

* ``label_logprobs(prompts, labels) -> [n, L]``: ``log P(first answer token spells label_l)`` for each judge prompt
  (a conversation; the answer is the assistant's next turn). A label's probability is the total probability of the
  tokens that start it, with and without a leading space (``"A"``, ``" A"``), so no free text is parsed.
  ``-inf`` where a label got no probability mass (or, for an API, fell outside the returned top logprobs).
* ``generate(prompts, max_new_tokens) -> list[str]``: a greedy answer (a reasoning trace ending in a verdict).

:class:`HFJudgeBackend` runs a local transformers causal LM (any ``AutoModelForCausalLM`` directory, or a tiny model
in tests). :class:`OpenAIJudgeBackend` calls an OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint
(OpenAI, vLLM, llama.cpp server, ...) through :class:`~rewardlab.rewards.remote.RewardClient` (timeouts, bearer key,
retries with exponential backoff on connection errors and 5xx), plus retries on 429 (rate limit), up to
``concurrency`` requests in flight, and an on-disk JSON cache of responses keyed by the request (atomic writes), so a
rerun costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.generation import position_limit, prompt_length_cap


class JudgeBackend(Protocol):
    name: str

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> torch.Tensor: ...

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]: ...


def label_token_ids(tokenizer, labels: Sequence[str]) -> list[list[int]]:
    """For each label, the ids of the tokens that can start it: the first token of ``label`` and of ``" " + label``.

    Raises ValueError when two labels share a starting token (their probabilities could not be told apart)."""
    out: list[list[int]] = []
    for label in labels:
        ids = []
        for variant in (label, " " + label):
            toks = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if toks and not tokenizer.decode(toks[:1]).strip():  # a bare-space token: it does not spell the label
                toks = []
            if toks and toks[0] not in ids:
                ids.append(int(toks[0]))
        if not ids:
            raise ValueError(f"label {label!r} encodes to no tokens")
        out.append(ids)
    for i in range(len(out)):
        for j in range(i + 1, len(out)):
            shared = set(out[i]) & set(out[j])
            if shared:
                raise ValueError(f"labels {labels[i]!r} and {labels[j]!r} start with the same token(s) {shared}")
    return out


class HFJudgeBackend:
    """A local causal LM as judge. Prompts go through the tokenizer's chat template with the generation prompt
    (:func:`rewardlab.models.generation.encode_prompts`); one forward pass per batch gives the next-token
    distribution at the start of the answer."""

    def __init__(self, model, tokenizer, batch_size: int = 8, max_prompt_length: int | None = None,
                 name: str = "hf"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_positions = position_limit(model)
        self.max_prompt_length = max_prompt_length or self.max_positions
        self.name = name
        self.stats = {"prompts": 0, "truncated": 0}  # judge prompts cut from the left to fit the context
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None, dtype: torch.dtype | None = None,
                        **kwargs) -> HFJudgeBackend:
        """Load an HF causal-LM directory, a ``.gguf`` file or ``smollm2`` (see
        :func:`rewardlab.models.backbone.load_causal_lm`; safetensors only)."""
        from rewardlab.models.backbone import load_causal_lm

        model, tokenizer = load_causal_lm(path, device or "cpu", dtype=dtype)
        kwargs.setdefault("name", Path(str(path)).name)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def next_token_logprobs(self, prompts: Sequence[Prompt]) -> torch.Tensor:
        """``log π(· | judge prompt)`` at the first answer position, ``[n, V]`` float32 (length-sorted batches,
        input order kept; positions from the mask, so padding does not change the result)."""
        from rewardlab.data.batching import pad_batch

        ids = self._encode(prompts, self.max_prompt_length)
        pad = self.tokenizer.pad_token_id
        out = torch.empty((len(ids), self.model.config.vocab_size), dtype=torch.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for s in range(0, len(order), self.batch_size):
            batch = order[s : s + self.batch_size]
            x, mask = pad_batch([ids[i] for i in batch], pad, side="left", device=self.device)
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            logits = self.model(input_ids=x, attention_mask=mask, position_ids=pos).logits[:, -1, :].float()
            out[batch] = torch.log_softmax(logits, -1).cpu()[:, : out.shape[1]]
        return out

    def _encode(self, prompts: Sequence[Prompt], limit: int | None) -> list[list[int]]:
        """Judge prompts as ids, cut to ``limit`` tokens as generation cuts them (the end kept, and a leading bos;
        counted in ``stats``)."""
        from rewardlab.models.generation import encode_prompts

        full = encode_prompts(self.tokenizer, prompts)
        over = sum(limit is not None and len(x) > limit for x in full)
        self.stats["prompts"] += len(full)
        self.stats["truncated"] += over
        return encode_prompts(self.tokenizer, prompts, limit) if over else full

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> torch.Tensor:
        logp = self.next_token_logprobs(prompts)
        return torch.stack([logp[:, ids].logsumexp(-1) for ids in label_token_ids(self.tokenizer, labels)], dim=-1)

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]:
        from rewardlab.models.generation import sample

        limit = prompt_length_cap(self.model, max_new_tokens)
        if self.max_prompt_length is not None:
            limit = min(self.max_prompt_length, limit or self.max_prompt_length)
        self._encode(prompts, limit)  # counts truncations; sample() truncates the same way
        ro = sample(self.model, self.tokenizer, list(prompts), num_samples=1, max_new_tokens=max_new_tokens,
                    temperature=0.0, batch_size=self.batch_size, max_prompt_length=limit)
        return ro.responses


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


class OpenAIJudgeBackend:
    """An OpenAI-compatible chat-completions endpoint as judge.

    ``base_url`` like ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1`` (default ``$OPENAI_BASE_URL``);
    ``api_key`` default ``$OPENAI_API_KEY`` (sent as a bearer token, never written to the cache). Requests use
    temperature 0. ``label_logprobs`` asks for one token with ``logprobs``/``top_logprobs``; a label's log-probability
    is the logsumexp of the returned top tokens that spell it (after stripping spaces). An endpoint that returns no
    logprobs falls back to the answer text: log-probability 0 for the label the answer starts with, ``-inf`` for the
    others (counted in ``stats["no_logprobs"]``).
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 60.0,
                 retries: int = 4, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 cache_dir: str | os.PathLike | None = None, top_logprobs: int = 20, concurrency: int = 4,
                 transport: Any = None):
        from rewardlab.rewards.remote import RewardClient

        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.model = model
        self.name = f"{model}@{base_url}"
        self.base_url = base_url.rstrip("/")
        self.top_logprobs = top_logprobs
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.client = RewardClient(self.base_url, token=api_key, timeout_s=timeout_s, retries=retries,
                                   backoff_s=backoff_s, max_backoff_s=max_backoff_s, transport=transport)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.concurrency = max(1, concurrency)
        self.stats = {"requests": 0, "cache_hits": 0, "no_logprobs": 0, "rate_limited": 0}
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _map(self, fn, items: Sequence[Any]) -> list[Any]:
        """``fn`` over items with up to ``concurrency`` requests in flight; results in input order."""
        if self.concurrency == 1 or len(items) < 2:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    # ------------------------------------------------------------------ transport + cache
    def _cache_path(self, payload: dict) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps([self.base_url, payload], sort_keys=True).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    def chat(self, payload: dict) -> dict:
        """POST ``/chat/completions`` (from the cache when the same request was answered before)."""
        from rewardlab.io import write_json_atomic
        from rewardlab.rewards.remote import RemoteError

        path = self._cache_path(payload)
        if path is not None and path.exists():
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
                self._count("cache_hits")
                return cached["response"]
            except (ValueError, KeyError):
                pass  # an unreadable entry is refetched and overwritten
        for attempt in range(self.retries + 1):
            try:
                self._count("requests")
                body = self.client.request("POST", "/chat/completions", payload)
                break
            except RemoteError as e:  # RewardClient retried connection errors and 5xx; 429 is retried here
                if e.status != 429 or attempt == self.retries:
                    raise
                self._count("rate_limited")
                time.sleep(min(self.backoff_s * 2**attempt, self.max_backoff_s))
        if path is not None:
            write_json_atomic(path, {"request": payload, "response": body})
        return body

    def _payload(self, prompt: Prompt, max_tokens: int, logprobs: bool) -> dict:
        payload: dict[str, Any] = {"model": self.model, "messages": as_messages(prompt), "max_tokens": max_tokens,
                                   "temperature": 0.0}
        if logprobs:
            payload.update(logprobs=True, top_logprobs=self.top_logprobs)
        return payload

    # ------------------------------------------------------------------ backend interface
    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> torch.Tensor:
        out = torch.full((len(prompts), len(labels)), -math.inf)
        bodies = self._map(lambda p: self.chat(self._payload(p, 1, logprobs=True)), prompts)
        for i, body in enumerate(bodies):
            choice = body["choices"][0]
            content = ((choice.get("logprobs") or {}).get("content") or [])
            if content and content[0].get("top_logprobs"):
                for j, label in enumerate(labels):
                    lps = [t["logprob"] for t in content[0]["top_logprobs"] if t["token"].strip() == label]
                    if lps:
                        out[i, j] = torch.tensor(lps, dtype=torch.float64).logsumexp(0).float()
            else:
                self._count("no_logprobs")
                text = (choice.get("message") or {}).get("content") or ""
                for j, label in enumerate(labels):
                    if text.strip().startswith(label):
                        out[i, j] = 0.0
                        break
        return out

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]:
        bodies = self._map(lambda p: self.chat(self._payload(p, max_new_tokens, logprobs=False)), prompts)
        return [(b["choices"][0].get("message") or {}).get("content") or "" for b in bodies]
