"""Adapts any :class:`~rewardlab.rewards.base.Reward` to the server: input preparation, limits, scalar outputs.

Two kinds of reward are served:

- a *model* reward (duck-typed: ``encode``, ``encode_text``, ``score_ids``, ``tokenizer``, e.g.
  :class:`~rewardlab.rewards.model.ModelReward`): requests are tokenized on a preparation thread and the batcher
  runs ``score_ids`` on the token ids, exactly what offline ``ModelReward.score`` runs;
- any other reward: items stay ``(prompt, response)`` (plus the item's label for a reward that ``uses_labels``) and
  the batcher calls ``reward.score``. Token counts are then UTF-8 bytes (an upper bound for byte-level tokenizers).

Limits, checked for every item of a request before anything is tokenized: at most ``max_item_bytes`` UTF-8 bytes
(default ``16 * max_item_tokens``), then at most ``max_item_tokens`` tokens -- counted only for items longer than
``max_item_tokens`` bytes, since a token covers at least one byte. So the tokenizing work per item is bounded by
``max_item_bytes`` and an oversized item is refused at once.

Full texts (OpenRLHF ``query``, vLLM ``input``) arrive decoded with special tokens kept. When OpenRLHF's
``prompts[i]`` is a prefix of ``query[i]`` the text is split there and scored as ``(prompt, response)`` with the
prompt cut from the left when too long (:meth:`ModelReward.encode_text` with ``prompt=``); otherwise the whole text
is one response of which the model reads the **end** (it is cut from the left). Before encoding, leading pad
tokens and a leading copy of the tokenizer's own start tokens (e.g. bos) are removed, as are trailing pad/eos/end
tokens; the model's layout then adds its own (e.g. ``text <eos>``). So ``query`` with or without its trailing eos
scores the same — except on a layout that adds no eos (imported transformers RMs, scored as ``tokenizer(text)``):
there a text that ended with eos keeps one (a Llama-3 or Mistral template's own end of turn, where the score is
read), however many pad/eos copies followed it. A non-model reward gets the same split: ``(prompt, rest)`` or
``("", text)``.

Several preparation threads share the tokenizer. That is safe because no call here changes its truncation or
padding settings (an HF fast tokenizer mutates its Rust state when ``truncation=``/``padding=`` differ from the last
call, which races across threads): truncation happens on the ids, in the reward's encoder.

Scalar reward of a k-output reward: ``reward.aggregate(rows)`` when the reward defines it, else the mean over
outputs. A reward with members (it declares ``member_names``, :mod:`rewardlab.rewards.base`; e.g.
:class:`~rewardlab.rewards.ensemble.EnsembleReward`) is run once for its member scores (``score_members``) and
aggregated with its own rule (``aggregate_members``), so ``/v1/score`` returns both the aggregate (``scores``, equal
to ``reward.score``) and the members (``members``, named by ``member_names``).

A process reward model (duck-typed: ``step_scores`` + ``separator``, e.g. :class:`~rewardlab.rewards.prm.PRMReward`)
is run once per batch for its step rewards; ``run`` returns rows ``[aggregate, n_steps, p_1, ..., p_S]`` padded with
NaN to the batch's most steps, so the scalar endpoints read column 0 (equal to ``PRMReward.score``) and
:meth:`ServedReward.steps` cuts each item's own ``n_steps`` rewards back out (a step dropped by truncation stays NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.rewards.base import clean_label, is_batch_invariant, member_names, score_with_labels, uses_labels

PAD_SLACK = 1.25  # a dynamic batch is scored in groups whose longest item is at most 1.25x their shortest
BYTES_PER_TOKEN_CAP = 16  # default max_item_bytes = 16 * max_item_tokens (English text is ~4 bytes per token)


class InputError(ValueError):
    """A request the server refuses (answered 4xx): ``status`` 413 or 422, ``message`` for the client."""

    def __init__(self, message: str, status: int = 422, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass
class Prepared:
    items: list[Any]
    costs: list[int]

    @property
    def tokens(self) -> int:
        return sum(self.costs)


def _utf8_len(text: str, index: int) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # JSON allows lone surrogates ("\ud800"); no tokenizer does
        raise InputError(f"item {index}: text is not valid Unicode (it holds a lone surrogate)", 422,
                         param=f"item[{index}]") from None


def _text_bytes(x: Prompt | Response, index: int) -> int:
    if isinstance(x, str):
        return _utf8_len(x, index)
    return sum(_utf8_len(m.get("content", ""), index) + _utf8_len(m.get("role", ""), index) for m in x)


def _contents(x: Prompt | Response) -> str:
    return x if isinstance(x, str) else "\n".join(m.get("content", "") for m in x)


class ServedReward:
    """The served reward plus everything the endpoints need to know about it."""

    def __init__(self, reward: Any, name: str | None = None, max_item_tokens: int = 16384,
                 max_item_bytes: int | None = None):
        self.reward = reward
        self.name = name or getattr(reward, "name", None) or type(reward).__name__
        self.max_item_tokens = max_item_tokens
        self.max_item_bytes = max_item_bytes or BYTES_PER_TOKEN_CAP * max_item_tokens
        self.is_model = all(hasattr(reward, a) for a in ("encode", "encode_text", "score_ids", "tokenizer"))
        self.is_ensemble = not self.is_model and member_names(reward) is not None
        self.batch_invariant = is_batch_invariant(reward)
        self.is_prm = (not self.is_model and not self.is_ensemble and callable(getattr(reward, "step_scores", None))
                       and hasattr(reward, "separator"))
        self.uses_labels = not self.is_model and not self.is_ensemble and not self.is_prm and uses_labels(reward)
        self.tokenizer = reward.tokenizer if self.is_model else None
        self.max_length: int | None = getattr(reward, "max_length", None)
        norm = getattr(reward, "normalization", None)
        if norm is None:
            norm = (getattr(reward, "manifest", None) or {}).get("normalization")
        self.normalization: dict[str, float] | None = norm
        self._num_outputs: int | None = 1 if self.is_ensemble else getattr(reward, "num_outputs", None)
        if self.is_model:
            self._lead, self._trail, self._restore_eos = self._strip_sets()

    # ------------------------------------------------------------------ facts
    def truncated_items(self) -> float | None:
        """Items the model reward's encoder truncated so far (None when the reward keeps no such count)."""
        stats = getattr(getattr(self.reward, "encoder", None), "stats", None)
        if stats is None:
            return None
        if hasattr(stats, "items_with_dropped_steps"):  # a PRM's StepTruncation (a cut step is also a dropping)
            return float(stats.prompt_truncated + stats.items_with_dropped_steps)
        return float(stats.prompt_truncated + stats.response_truncated + stats.dropped)

    @property
    def num_outputs(self) -> int:
        if self._num_outputs is None:
            declared = getattr(self.reward, "num_outputs", None)
            if isinstance(declared, int):
                self._num_outputs = declared
            else:  # ask the reward once, with a probe
                rows = self.reward.score([""], [""])
                self._num_outputs = 1 if rows.ndim == 1 else int(rows.shape[1])
        return self._num_outputs

    # ------------------------------------------------------------------ preparation (runs on a prep thread)
    def _check_sizes(self, sizes: Sequence[int], texts: Sequence[Any]) -> None:
        """Byte limit for every item first (nothing tokenized yet), then the token limit (see the module doc)."""
        for i, n in enumerate(sizes):
            if n > self.max_item_bytes or (not self.is_model and n > self.max_item_tokens):
                limit, flag = ((self.max_item_bytes, "--max-item-bytes") if n > self.max_item_bytes
                               else (self.max_item_tokens, "--max-item-tokens"))
                raise InputError(f"item {i} has {n} bytes; this server accepts at most {limit} per item ({flag})",
                                 422, param=f"item[{i}]")
        if not self.is_model:
            return
        for i, n in enumerate(sizes):
            if n <= self.max_item_tokens:  # tokens <= bytes for byte-level / byte-fallback tokenizers
                continue
            count = len(self.tokenizer(texts[i], add_special_tokens=False)["input_ids"])
            if count > self.max_item_tokens:
                raise InputError(f"item {i} has {count} tokens; this server accepts at most {self.max_item_tokens} "
                                 f"per item (--max-item-tokens)", 422, param=f"item[{i}]")

    def check_pairs(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> list[int]:
        """The per-item limits for (prompt, response) items; returns their sizes in bytes."""
        sizes = [_text_bytes(p, i) + _text_bytes(r, i) for i, (p, r) in enumerate(zip(prompts, responses, strict=True))]
        self._check_sizes(sizes, [_contents(p) + _contents(r) for p, r in zip(prompts, responses, strict=True)])
        return sizes

    def prepare_pairs(self, prompts: Sequence[Prompt], responses: Sequence[Response],
                      labels: Sequence[Any] | None = None) -> Prepared:
        sizes = self.check_pairs(prompts, responses)
        if self.is_model:
            try:
                ids = self.reward.encode(prompts, responses)
            except Exception as e:  # a chat template refusing the conversation (e.g. roles must alternate)
                if type(e).__module__.split(".")[0] != "jinja2":
                    raise
                raise InputError(f"the model's chat template refused a conversation: {e}", 422) from None
            return Prepared(self._check_ids(ids), [len(x) for x in ids])
        return Prepared(self._items(prompts, responses, labels), sizes)

    def prepare_texts(self, texts: Sequence[str], prompts: Sequence[Any] | None = None,
                      labels: Sequence[Any] | None = None) -> Prepared:
        """Full texts; ``prompts[i]`` (OpenRLHF), when a string that starts ``texts[i]``, marks the prompt part."""
        sizes = [_utf8_len(t, i) for i, t in enumerate(texts)]
        self._check_sizes(sizes, texts)
        heads = [self._prompt_of(t, prompts[i] if prompts is not None and i < len(prompts) else None)
                 for i, t in enumerate(texts)]
        if self.is_model:
            ids = [self._encode_full(t, h) for t, h in zip(texts, heads, strict=True)]
            return Prepared(self._check_ids(ids), [len(x) for x in ids])
        return Prepared(self._items([t[:len(h)] for t, h in zip(texts, heads, strict=True)],
                                    [t[len(h):] for t, h in zip(texts, heads, strict=True)], labels), sizes)

    @staticmethod
    def _prompt_of(text: str, prompt: Any) -> str:
        """The prompt part of a full text: ``prompt`` when it is a non-empty string starting ``text``, else ``""``."""
        return prompt if isinstance(prompt, str) and prompt and text.startswith(prompt) else ""

    def _encode_full(self, text: str, head: str) -> list[int]:
        if not head:
            return self.reward.encode_text(self.strip_special(text))
        prompt = self.strip_special(head, trailing=False)
        return self.reward.encode_text(prompt + self.strip_special(text[len(head):], leading=False),
                                       prompt=prompt or None)

    def _items(self, prompts: Sequence[Prompt], responses: Sequence[Response],
               labels: Sequence[Any] | None) -> list[tuple]:
        if not self.uses_labels:
            return list(zip(prompts, responses, strict=True))
        labels = [clean_label(x) for x in labels] if labels is not None else [None] * len(prompts)
        if len(labels) != len(prompts):
            raise InputError(f"{len(labels)} labels for {len(prompts)} items", 422, param="labels")
        return list(zip(prompts, responses, labels, strict=True))

    def prepare_ids(self, seqs: Sequence[Sequence[int]]) -> Prepared:
        """Token-id input (vLLM ``input: [[int]]``): scored as given, only checked against the vocabulary/limits."""
        if not self.is_model:
            raise InputError("token-id input needs a model reward; this server serves a non-model reward", 422,
                             param="input")
        vocab = len(self.tokenizer)
        limit = min(self.max_item_tokens, self.max_length or self.max_item_tokens)
        for i, s in enumerate(seqs):
            if not s:
                raise InputError(f"input {i} is an empty token list", 422, param="input")
            if len(s) > limit:
                raise InputError(f"input {i} has {len(s)} tokens; at most {limit} accepted", 422, param="input")
            if any(t < 0 or t >= vocab for t in s):
                raise InputError(f"input {i} has token ids outside [0, {vocab})", 422, param="input")
        return Prepared([list(s) for s in seqs], [len(s) for s in seqs])

    def _check_ids(self, ids: list[list[int] | None]) -> list[list[int]]:
        for i, x in enumerate(ids):
            if not x:
                raise InputError(f"item {i} encodes to no tokens (dropped as over-long or empty)", 422)
        return ids  # type: ignore[return-value]

    def _strip_sets(self) -> tuple[set[int], set[int], bool]:
        """Special ids to strip from the start / end of a full text before the layout adds its own, and whether a
        stripped trailing eos is put back (see below)."""
        tok = self.tokenizer
        probe = tok("a", add_special_tokens=False)["input_ids"]
        laid = self.reward.encode_text("a")
        start, end = [], []
        for i in range(len(laid) - len(probe) + 1):
            if laid[i : i + len(probe)] == probe:
                start, end = laid[:i], laid[i + len(probe) :]
                break
        special = set(tok.all_special_ids)
        pad_eos = {x for x in (tok.pad_token_id, tok.eos_token_id) if x is not None}
        # a layout that does not end with eos itself (imported transformers RMs: exactly tokenizer(text)) reads
        # a text's own trailing eos (Llama-3's <|eot_id|>, Mistral's </s>): one is put back after stripping
        restore_eos = tok.eos_token_id is not None and tok.eos_token_id not in end
        return ({tok.pad_token_id} | set(start)) & special, (pad_eos | set(end)) & special, restore_eos

    def strip_special(self, text: str, leading: bool = True, trailing: bool = True) -> str:
        """Remove leading pad/start and trailing pad/eos/end special tokens from an already-rendered text."""
        tok = self.tokenizer
        lead = [tok.convert_ids_to_tokens(i) for i in self._lead] if leading else []
        trail = [tok.convert_ids_to_tokens(i) for i in self._trail] if trailing else []
        eos, had_eos = tok.eos_token, False
        changed = True
        while changed:
            changed = False
            for s in lead:
                if s and text.startswith(s):
                    text, changed = text[len(s) :], True
            for s in trail:
                if s and text.endswith(s):
                    text, changed, had_eos = text[: -len(s)], True, had_eos or s == eos
        return text + eos if had_eos and self._restore_eos else text

    # ------------------------------------------------------------------ scoring (runs on the batcher thread)
    def run(self, items: list[Any]) -> torch.Tensor:
        if self.is_model:
            return self._score_ids_low_padding(items)
        prompts, responses = [it[0] for it in items], [it[1] for it in items]
        if self.is_ensemble:  # one pass gives the members; the aggregate is computed from them
            return self.reward.score_members(prompts, responses)
        if self.is_prm:
            return self._run_steps(prompts, responses)
        labels = [it[2] for it in items] if self.uses_labels else None
        return score_with_labels(self.reward, prompts, responses, labels)

    def _score_ids_low_padding(self, seqs: list[list[int]]) -> torch.Tensor:
        """``score_ids`` on groups of similar length: online batches mix lengths at random, and padding a short item
        to the longest costs more than the batching saves on CPU. A group ends when an item is more than
        :data:`PAD_SLACK` times the group's shortest (results do not depend on grouping)."""
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        groups: list[list[int]] = []
        for i in order:
            if groups and len(seqs[i]) <= PAD_SLACK * len(seqs[groups[-1][0]]):
                groups[-1].append(i)
            else:
                groups.append([i])
        out: torch.Tensor | None = None
        for g in groups:
            rows = self.reward.score_ids([seqs[i] for i in g])
            if out is None:
                out = torch.empty((len(seqs), *rows.shape[1:]), dtype=rows.dtype)
            out[g] = rows
        return out

    def _run_steps(self, prompts: list[Any], responses: list[Any]) -> torch.Tensor:
        """PRM rows ``[aggregate, n_steps, p_1..p_S]`` (NaN-padded to the batch's most steps ``S``)."""
        from rewardlab.rewards.prm import aggregate_steps

        per_step = self.reward.step_scores(prompts, responses)
        method = getattr(self.reward, "aggregate", "min")
        width = max((len(s) for s in per_step), default=0)
        out = torch.full((len(per_step), 2 + width), float("nan"))
        for i, s in enumerate(per_step):
            out[i, 0] = aggregate_steps(s, method)
            out[i, 1] = len(s)
            out[i, 2 : 2 + len(s)] = torch.tensor(s, dtype=torch.float32)
        return out

    # ------------------------------------------------------------------ outputs
    def member_names(self) -> list[str] | None:
        """The names of the member columns (a reward with members), else None."""
        return member_names(self.reward) if self.is_ensemble else None

    def steps(self, rows: torch.Tensor) -> list[list[float]]:
        """A PRM's per-step rewards of each item (NaN: a step dropped by truncation)."""
        return [row[2 : 2 + int(row[1])].tolist() for row in rows]

    def matrix(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows as ``[n, k]``."""
        if self.is_prm and rows.ndim == 2:
            return rows[:, :1]
        return rows.unsqueeze(-1) if rows.ndim == 1 else rows

    def scalar(self, rows: torch.Tensor) -> torch.Tensor:
        """One reward per item, ``[n]``."""
        if self.is_prm and rows.ndim == 2:
            return rows[:, 0]
        if rows.ndim == 1:
            return rows
        if rows.shape[1] == 1 and not self.is_ensemble:
            return rows[:, 0]
        if self.is_ensemble:
            return self.reward.aggregate_members(rows)
        aggregate = getattr(self.reward, "aggregate", None)
        return aggregate(rows) if callable(aggregate) else rows.mean(dim=1)

    def normalize(self, scalar: torch.Tensor) -> torch.Tensor | None:
        """``(r - mean) / std`` with the manifest's fixed reference stats; None when the reward has none."""
        if not self.normalization:
            return None
        mean, std = float(self.normalization["mean"]), float(self.normalization["std"])
        return (scalar - mean) / (std if std > 0 else 1.0)
