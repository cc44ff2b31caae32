"""A rewardlab reward as verl's custom reward function (checked against verl-project/verl @ 1dda039, 2026-08).

How verl calls it (``verl/experimental/reward_loop/reward_manager/naive.py``, ``NaiveRewardManager.run_single``;
loaded by ``verl/trainer/ppo/reward.py:get_custom_reward_fn``): once per sample, keyword arguments only,

    compute_score(data_source=non_tensor_batch["data_source"],
                  solution_str=tokenizer.decode(valid_response_ids, skip_special_tokens=True),
                  ground_truth=non_tensor_batch["reward_model"]["ground_truth"],
                  extra_info=non_tensor_batch["extra_info"] + {"num_turns", "rollout_reward_scores", tool fields},
                  [reward_router_address=..., reward_model_tokenizer=...]  # only with a reward-model router
                  **custom_reward_function.reward_kwargs)

a plain function in the event loop's thread-pool executor, a coroutine function awaited on the loop
(``inspect.iscoroutinefunction``); samples of a batch run concurrently (``asyncio.gather``). A float result is the
reward (logged as ``acc``); a dict gives its ``"score"``. Config::

    reward.custom_reward_function.path=pkg://rewardlab.integrations.verl   # verl's load_module: pkg:// = a module
    reward.custom_reward_function.name=compute_score                       # or compute_score_async

The reward: ``+reward.custom_reward_function.reward_kwargs.rewardlab_spec=SPEC_OR_URL``, else :func:`configure`
(in a file of your own given as ``path``, since verl's reward workers are other processes), else
``$REWARDLAB_REWARD`` (Ray workers started on one node inherit the driver's environment; on a cluster put it in
the Ray ``runtime_env``). SPEC_OR_URL is any reward spec (:func:`rewardlab.rewards.registry.load_reward`: a
checkpoint directory, ``python:MOD:FN``, ``rule:``, ...) or ``http(s)://HOST:PORT`` of a rewardlab server (token
from ``$REWARDLAB_TOKEN``); one Reward per spec per process.

What is scored: the prompt is ``extra_info["prompt"]`` when present, else ``extra_info["question"]`` (where verl's
gsm8k/math preprocessing keeps the raw question), else ``""`` (the response alone); ``solution_str`` is the
response, as an assistant message when the prompt is a message list. ``ground_truth`` is the item's label (for
``rule:exact``/``rule:numeric`` and ``python:`` functions with ``label``/``labels``); batched ``python:`` functions
also get ``data_source``, ``ground_truth`` and ``extra_info`` as columns. Multi-output rewards give their mean.
A non-finite score raises (it would turn verl's advantages into NaN).

Local rewards are scored one call at a time under a lock (models and fast tokenizers are not safe to share across
verl's executor threads); URL rewards are not locked, so concurrent samples reach the server together and its
batcher merges them. The async variant runs the same call in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from typing import Any

from rewardlab.errors import UserError
from rewardlab.rewards.base import score_with_labels

ENV_VAR = "REWARDLAB_REWARD"

_configured: str | None = None
_rewards: dict[str, tuple[Any, threading.Lock | None]] = {}
_rewards_lock = threading.Lock()


def configure(spec_or_url: str | None) -> None:
    """Set the reward used when verl's config passes no ``rewardlab_spec`` (``None``: back to ``$REWARDLAB_REWARD``)."""
    global _configured
    _configured = spec_or_url


def _reward(spec: str | None) -> tuple[Any, threading.Lock | None]:
    spec = spec or _configured or os.environ.get(ENV_VAR)
    if not spec:
        raise UserError(f"rewardlab.integrations.verl: no reward configured; set ${ENV_VAR}, call configure(SPEC), "
                        "or pass +reward.custom_reward_function.reward_kwargs.rewardlab_spec=SPEC")
    with _rewards_lock:
        if spec not in _rewards:
            from rewardlab.rewards.registry import load_reward

            remote = spec.startswith(("http://", "https://", "openrlhf+http://", "openrlhf+https://"))
            _rewards[spec] = (load_reward(spec), None if remote else threading.Lock())
        return _rewards[spec]


def _prompt(extra_info: dict | None) -> Any:
    info = extra_info or {}
    for key in ("prompt", "question"):
        if info.get(key) is not None:
            return info[key]
    return ""


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  rewardlab_spec: str | None = None, **kwargs) -> float:
    """verl's ``compute_score`` contract: the reward of one decoded response (see the module docstring).
    Other verl keywords (``reward_router_address``, ``reward_model_tokenizer``, reward_kwargs) are ignored."""
    reward, lock = _reward(rewardlab_spec)
    prompt = _prompt(extra_info)
    response = [{"role": "assistant", "content": solution_str}] if isinstance(prompt, list) else solution_str
    columns = {"data_source": [data_source], "ground_truth": [ground_truth], "extra_info": [extra_info]}
    if lock is None:
        scores = score_with_labels(reward, [prompt], [response], [ground_truth], columns=columns)
    else:
        with lock:
            scores = score_with_labels(reward, [prompt], [response], [ground_truth], columns=columns)
    value = float(scores.reshape(1, -1).mean())
    if not math.isfinite(value):
        raise ValueError(f"rewardlab reward {getattr(reward, 'name', reward)!r} gave {value} for a "
                         f"{data_source!r} sample; verl needs a finite reward")
    return value


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                              rewardlab_spec: str | None = None, **kwargs) -> float:
    """The coroutine form verl awaits on its reward loop (the scoring itself runs in a thread)."""
    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth, extra_info,
                                   rewardlab_spec, **kwargs)
