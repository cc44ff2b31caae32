"""Policy sampling on vLLM (``--engine vllm``): :class:`VLLMSampler`, a drop-in for
:func:`rewardlab.models.generation.sample` (same arguments, same :class:`~rewardlab.models.generation.Rollout`).

What is the same as the transformers path: the prompt token ids (:func:`~rewardlab.models.generation.encode_prompts`
with the same cap, :func:`~rewardlab.models.generation.prompt_length_cap`, passed to vLLM as token ids, so no
tokenizer of vLLM's is involved), ``num_samples`` responses per prompt in the same order (response ``i`` belongs to
prompt ``i // num_samples``), ``max_new_tokens``, ``temperature`` (≤ 0: greedy), nucleus ``top_p``, no top-k, no
repetition penalty, and stopping at the tokenizer's eos only (the model's ``generation_config.json`` is not read:
``generation_config="vllm"``), the eos kept in the response ids.

Seeds: response ``i`` of a call with ``seed`` is one vLLM request seeded ``(seed · 1000003 + i) mod (2³¹ − 1)``
(vLLM gives a seeded request its own generator), so a call is reproducible whatever else the engine is running;
the random stream is vLLM's, not torch's, so sampled tokens differ from the transformers path's for the same seed.

Weights: the engine loads a copy of the model written to a temporary directory (``save_pretrained``: the weights
as they are in memory, e.g. a random ``tiny`` policy), removed once the engine has read it.
:meth:`VLLMSampler.sync` copies new weights in place (vLLM's ``reload_weights`` with an iterator over a state dict,
then the prefix cache is reset: its keys and values were computed with the old weights). The engine runs in this
process (:mod:`rewardlab.models.vllm_runtime`: its environment, memory and step options), so a sync passes tensors,
not files; on a CPU vLLM's worker then ignores later ``torch.set_num_threads`` calls in this process. On a GPU vLLM
takes 30% of the device's memory, leaving the rest to the torch copy of the policy (and, when training, its
reference, gradients and optimizer state).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rewardlab.data.records import Prompt
from rewardlab.errors import UserError
from rewardlab.models import vllm_runtime as runtime
from rewardlab.models.generation import Rollout, encode_prompts, position_limit, prompt_length_cap


def request_seed(seed: int, i: int) -> int:
    """The seed of response ``i`` of a call seeded ``seed``."""
    return (seed * 1_000_003 + i) % (2**31 - 1)


class VLLMSampler:
    """A vLLM engine holding a copy of one policy; call it as :func:`rewardlab.models.generation.sample`. It runs
    beside other in-process engines (a ``vllm:`` reward); :meth:`close` follows
    :func:`rewardlab.models.vllm_runtime.shutdown`."""

    def __init__(self, model, tokenizer, dtype: Any = None):
        runtime.configure_env()
        from vllm import LLM

        device = next(model.parameters()).device.type
        runtime.check_platform(device, "--engine vllm")
        self.tokenizer = tokenizer
        weights = tempfile.mkdtemp(prefix="rewardlab-vllm-")
        model.save_pretrained(weights, safe_serialization=True)
        try:
            self.llm = runtime.started(LLM(
                model=weights, skip_tokenizer_init=True, seed=0, generation_config="vllm",
                dtype=runtime.dtype_name(dtype or next(model.parameters()).dtype),
                **runtime.engine_options(device, position_limit(model))))
        finally:  # the engine holds the weights; later ones come by sync, not from disk
            shutil.rmtree(weights, ignore_errors=True)

    def __call__(self, model, tokenizer, prompts: Sequence[Prompt], num_samples: int, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 64,
                 max_prompt_length: int | None = None,
                 on_batch: Callable[[int], None] | None = None) -> Rollout:
        """:func:`rewardlab.models.generation.sample` on this engine. ``model`` only gives the prompt cap (its
        position limit): the engine samples the weights it holds (:meth:`sync`). All requests go to vLLM at once
        (it batches them itself); ``on_batch`` is then called once per ``batch_size`` responses."""
        from vllm import SamplingParams

        if not 0.0 < top_p <= 1.0:
            raise UserError(f"--top-p {top_p}: must be in (0, 1]")
        max_prompt_length = prompt_length_cap(model, max_new_tokens, max_prompt_length)
        p_ids = encode_prompts(tokenizer, prompts, max_prompt_length)
        flat = [i for i in range(len(prompts)) for _ in range(num_samples)]
        eos_id = tokenizer.eos_token_id
        greedy = temperature <= 0
        params = [SamplingParams(n=1, temperature=0.0 if greedy else float(temperature), top_p=float(top_p),
                                 max_tokens=max_new_tokens, seed=None if greedy else request_seed(seed, i),
                                 stop_token_ids=[int(eos_id)] if eos_id is not None else None, detokenize=False)
                  for i in range(len(flat))]
        outputs = self.llm.generate([{"prompt_token_ids": p_ids[g]} for g in flat], params, use_tqdm=False)
        responses_ids = []
        for out in outputs:
            row = [int(t) for t in out.outputs[0].token_ids]
            if eos_id is not None and eos_id in row:
                row = row[: row.index(eos_id) + 1]
            responses_ids.append(row)
        if on_batch is not None:
            for s in range(0, len(flat), batch_size):
                on_batch(len(flat[s : s + batch_size]))
        return Rollout(prompts=[prompts[g] for g in flat],
                       responses=[tokenizer.decode(r, skip_special_tokens=True) for r in responses_ids],
                       group=flat, prompt_ids=[p_ids[g] for g in flat], response_ids=responses_ids)

    def sync(self, state: dict[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Copy new weights (a state dict under the HF model's keys, e.g. ``policy.state_dict()``) into the engine,
        in place, and drop the prefix cache computed with the old ones."""
        items = list(state.items()) if isinstance(state, dict) else list(state)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": [(k, v.detach()) for k, v in items]})
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down (:func:`rewardlab.models.vllm_runtime.shutdown`)."""
        runtime.shutdown(self.__dict__.pop("llm", None))
