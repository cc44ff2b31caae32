"""Sampling and per-token log-probabilities for causal LMs — shared by the evaluate and optimize stages.

* :func:`sample` draws ``num_samples`` responses per prompt (temperature / top-p, own KV-cached loop with a
  private ``torch.Generator`` so results are seeded and leave the global RNG alone); returns a
  :class:`Rollout`. Tiny GPT-2 on CPU: 256 x 48 tokens in 0.36 s vs 0.43 s for HF ``generate``.
* :func:`sequence_logprobs` gives ``log π(y_t | x, y_<t)`` for every response token, with gradients when
  called outside ``torch.no_grad``. Prompts are left-padded and ``position_ids`` come from the attention mask
  (GPT-2 does not derive positions from the mask, so a left-padded prompt would otherwise be shifted).
* :func:`sequence_kl` is the sequence KL estimate ``Σ_t log π(y_t)/π_ref(y_t)`` (RLOO/GRPO, gold tracking).
* :func:`prompt_length_cap` is the prompt budget of a policy: a model with ``P`` positions (GPT-2's ``n_positions``,
  ``max_position_embeddings``) holds ``prompt + generation ≤ P`` tokens, so prompts keep at most
  ``P − max_new_tokens`` tokens (their end); :func:`count_truncated` counts the prompts that lose tokens.

Shapes: ``b`` = number of sequences, ``T`` = longest response in the batch (responses right-padded).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import Prompt
from rewardlab.data.tokenize import DEFAULT_CHAT_TEMPLATE
from rewardlab.errors import UserError


@dataclass
class Rollout:
    """Sampled responses, one entry per response; those of prompt ``g`` are contiguous (``group[i] == g``).

    ``prompt_ids[i]`` are the tokens the model was conditioned on; ``response_ids[i]`` the generated tokens
    without padding, ending with eos when the model emitted it (so log-probs include the decision to stop).
    """

    prompts: list[Prompt]
    responses: list[str]
    group: list[int]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.responses)

    def select(self, index: Sequence[int]) -> Rollout:
        """A sub-rollout with the given response indices (group ids kept)."""
        return Rollout(
            prompts=[self.prompts[i] for i in index],
            responses=[self.responses[i] for i in index],
            group=[self.group[i] for i in index],
            prompt_ids=[self.prompt_ids[i] for i in index],
            response_ids=[self.response_ids[i] for i in index],
        )


def _pad_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    raise ValueError("tokenizer has neither pad nor eos token")


def _prefix_special_ids(tokenizer) -> list[int]:
    """The special ids the tokenizer puts *before* a text (e.g. Llama's ``<s>``).

    Suffixes such as a trailing eos are dropped: a generation prompt must not end the sequence."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return list(full[:i])
    return []


def encode_prompts(tokenizer, prompts: Sequence[Prompt],
                   max_prompt_length: int | None = None) -> list[list[int]]:
    """Token ids of each prompt for generation.

    Plain text gets the tokenizer's leading special tokens only (no trailing eos); conversations go through
    the chat template with the generation prompt (the template writes its own special tokens). Prompts longer
    than ``max_prompt_length`` keep their last tokens (the latest turns and the generation prompt), after the
    leading special tokens (e.g. ``<s>``: models are trained with it at position 0), which are kept when they fit
    with at least one more token. An empty prompt becomes ``[bos]`` (or ``[eos]``) so the model always has a token
    to condition on.
    """
    prefix = _prefix_special_ids(tokenizer)
    template = getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
    out = []
    for p in prompts:
        if isinstance(p, str):
            ids = prefix + list(tokenizer(p, add_special_tokens=False)["input_ids"]) if p else list(prefix)
        else:
            text = tokenizer.apply_chat_template(p, chat_template=template, add_generation_prompt=True,
                                                 tokenize=False)
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if max_prompt_length is not None and len(ids) > max_prompt_length:
            keep = prefix if prefix and ids[: len(prefix)] == prefix and len(prefix) < max_prompt_length else []
            ids = keep + ids[len(ids) - (max_prompt_length - len(keep)):]
        if not ids:
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            ids = [int(start)]
        out.append([int(t) for t in ids])
    return out


def position_limit(model) -> int | None:
    """The number of positions ``model`` can attend to (``max_position_embeddings``, GPT-2's ``n_positions``,
    ``n_ctx``), or None when its config names no limit."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def prompt_length_cap(model, max_new_tokens: int, max_prompt_length: int | None = None) -> int | None:
    """The prompt-token budget for generating ``max_new_tokens`` with ``model``: ``max_prompt_length`` if given,
    else ``P − max_new_tokens`` for a model with ``P`` positions (:func:`position_limit`), else None (no cap).

    Raises UserError (naming ``--max-new-tokens`` / ``--max-prompt-length``) when the generation alone leaves no
    room for a one-token prompt (``max_new_tokens ≥ P``), or when ``max_prompt_length + max_new_tokens > P``.
    """
    if max_new_tokens < 1:
        raise UserError(f"--max-new-tokens {max_new_tokens}: must be at least 1")
    if max_prompt_length is not None and max_prompt_length < 1:
        raise UserError(f"--max-prompt-length {max_prompt_length}: must be at least 1")
    limit = position_limit(model)
    if limit is None:
        return max_prompt_length
    if max_new_tokens >= limit:
        raise UserError(f"--max-new-tokens {max_new_tokens}: the policy has {limit} positions, which must hold the "
                        f"prompt (at least 1 token) and the generation; use at most {limit - 1}")
    room = limit - max_new_tokens
    if max_prompt_length is None:
        return room
    if max_prompt_length > room:
        raise UserError(f"--max-prompt-length {max_prompt_length}: with --max-new-tokens {max_new_tokens} this "
                        f"exceeds the policy's {limit} positions; use at most {room}")
    return max_prompt_length


def count_truncated(tokenizer, prompts: Sequence[Prompt], max_prompt_length: int | None) -> int:
    """How many of ``prompts`` have more than ``max_prompt_length`` generation tokens (0 without a cap)."""
    if max_prompt_length is None:
        return 0
    return sum(len(ids) > max_prompt_length for ids in encode_prompts(tokenizer, prompts))


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting only attended tokens: ``cumsum(mask) − 1``, clamped at 0 on pads."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose mass reaches ``top_p``; logits [b, V]."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= top_p  # mass strictly before this token already reaches top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _cache_argument(model) -> str:
    """The KV-cache keyword of ``model.forward``: ``cache`` from transformers 5.24 on, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _last_logits_only(model) -> dict[str, int]:
    """``{"logits_to_keep": 1}`` where ``model.forward`` takes it: the LM head then runs on the last position only
    (a prefill of b prompts of length L would otherwise compute b·L·vocab logits to read b·vocab of them)."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


@torch.no_grad()
def _sample_batch(model, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, temperature: float,
                  top_p: float, eos_id: int | None, gen: torch.Generator) -> list[list[int]]:
    b = ids.shape[0]
    out = torch.empty((b, 0), dtype=torch.long, device=ids.device)
    done = torch.zeros(b, dtype=torch.bool, device=ids.device)
    past, cache_arg, last = None, _cache_argument(model), _last_logits_only(model)
    step_ids, pos = ids, _positions(mask)
    for _ in range(max_new_tokens):
        o = model(input_ids=step_ids, attention_mask=mask, position_ids=pos, use_cache=True, **{cache_arg: past},
                  **last)
        past = o[cache_arg]
        logits = o.logits[:, -1, :].float()
        if temperature <= 0:
            nxt = logits.argmax(-1)
        else:
            probs = top_p_filter(logits / temperature, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
        if eos_id is not None:
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        out = torch.cat([out, nxt[:, None]], dim=1)
        if eos_id is not None:
            done |= nxt == eos_id
            if bool(done.all()):
                break
        mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=mask.device)], dim=1)
        step_ids, pos = nxt[:, None], pos[:, -1:] + 1
    rows = []
    for row in out.tolist():
        if eos_id is not None and eos_id in row:
            row = row[: row.index(eos_id) + 1]
        rows.append(row)
    return rows


def sample(model, tokenizer, prompts: Sequence[Prompt], num_samples: int, max_new_tokens: int,
           temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 64,
           max_prompt_length: int | None = None, on_batch: Callable[[int], None] | None = None) -> Rollout:
    """Draw ``num_samples`` responses for each prompt; response ``i`` belongs to prompt ``i // num_samples``.

    ``temperature <= 0`` means greedy. Sampling uses a private generator seeded with ``seed``: the same call
    gives the same rollout. The model is put in eval mode for the call and restored afterwards.
    ``max_prompt_length`` None: what fits the model with the generation (:func:`prompt_length_cap`).
    ``on_batch(n)`` is called after each generation batch with its number of sequences (progress).
    """
    device = next(model.parameters()).device
    max_prompt_length = prompt_length_cap(model, max_new_tokens, max_prompt_length)
    gen = torch.Generator(device=device).manual_seed(seed)
    eos_id = tokenizer.eos_token_id
    pad_id = _pad_id(tokenizer)
    p_ids = encode_prompts(tokenizer, prompts, max_prompt_length)
    flat = [i for i in range(len(prompts)) for _ in range(num_samples)]
    was_training = model.training
    model.eval()
    responses_ids: list[list[int]] = []
    try:
        for s in range(0, len(flat), batch_size):
            chunk = flat[s : s + batch_size]
            ids, mask = pad_batch([p_ids[g] for g in chunk], pad_id, side="left", device=device)
            responses_ids += _sample_batch(model, ids, mask, max_new_tokens, temperature, top_p, eos_id, gen)
            if on_batch is not None:
                on_batch(len(chunk))
    finally:
        model.train(was_training)
    texts = [tokenizer.decode(r, skip_special_tokens=True) for r in responses_ids]
    return Rollout(
        prompts=[prompts[g] for g in flat],
        responses=texts,
        group=flat,
        prompt_ids=[p_ids[g] for g in flat],
        response_ids=responses_ids,
    )


def response_logits(model, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
                    pad_id: int = 0, T: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits [b, T, V] float32, response ids [b, T], mask [b, T])``: ``logits[i, t]`` is the model's next-token
    distribution (unnormalized) before response token ``t`` of item i (left-padded prompts, right-padded responses,
    ``T`` = the longest response unless given). Differentiable unless called under ``no_grad``."""
    device = next(model.parameters()).device
    p, pm = pad_batch(prompt_ids, pad_id, side="left", device=device)
    Lp = p.shape[1]
    r, rm = pad_batch(response_ids, pad_id, side="right", device=device)
    extra = (r.shape[1] if T is None else T) - r.shape[1]
    r, rm = torch.nn.functional.pad(r, (0, extra), value=pad_id), torch.nn.functional.pad(rm, (0, extra))
    ids, mask = torch.cat([p, r], 1), torch.cat([pm, rm], 1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask)).logits
    return logits[:, Lp - 1 : Lp - 1 + r.shape[1], :].float(), r, rm  # position t predicts token t+1


def _logprobs_chunk(model, prompt_ids, response_ids, T: int, pad_id: int, temperature: float):
    # T is the longest response of the whole call, so chunks line up
    logits, r, rm = response_logits(model, prompt_ids, response_ids, pad_id, T)
    logits = logits / temperature
    logps = logits.gather(-1, r[..., None]).squeeze(-1) - logits.logsumexp(-1)
    return logps * rm, rm.to(logps.dtype)


def sequence_logprobs(model, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
                      pad_id: int = 0, temperature: float = 1.0,
                      batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of each response given its prompt.

    Returns ``(token_logps [b, T], mask [b, T])`` with ``token_logps[i, t] = log π(y_t | x_i, y_<t)`` (logits
    divided by ``temperature``) and 0 where ``mask`` is 0. Differentiable unless called under ``no_grad``.
    ``batch_size`` splits the forward passes (outputs are concatenated); ``pad_id`` only fills masked slots.
    """
    if len(prompt_ids) != len(response_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(response_ids)} responses")
    T = max(1, max((len(r) for r in response_ids), default=1))
    step = batch_size or max(1, len(prompt_ids))
    parts = [
        _logprobs_chunk(model, prompt_ids[s : s + step], response_ids[s : s + step], T, pad_id, temperature)
        for s in range(0, len(prompt_ids), step)
    ]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def sequence_kl_nonneg(logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence KL estimate that is never negative: ``KL_i = Σ_t (ρ_t − 1 − log ρ_t)``, ρ_t = π_ref(y_t)/π(y_t)
    ("k3", Schulman 2020, "Approximating KL divergence"); shape [b].

    Each term is ≥ 0 (x − 1 ≥ log x). With y_t ~ π(·|y_<t), E[ρ_t] = 1, so each term's expectation is the
    per-token KL(π ‖ π_ref) at that prefix and the sum is unbiased for the sequence KL (chain rule), like ``k1``,
    without its negative single-sample values. For measurement (gold tracking); the samples must come from π at
    the temperature the log-probs were taken at."""
    log_ratio = (ref_logps - logps) * mask
    return ((log_ratio.exp() - 1 - log_ratio) * mask).sum(-1)


def sequence_kl(logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence KL estimate ``KL_i = Σ_t (log π(y_t) − log π_ref(y_t))`` over response tokens; shape [b].

    Unbiased for ``KL(π‖π_ref)`` when ``y ~ π`` (the "k1" estimator; can be negative for a single sample).
    """
    return ((logps - ref_logps) * mask).sum(-1)
