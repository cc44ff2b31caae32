"""What every in-process vLLM engine of rewardlab shares: the environment it runs in, the device check, the memory
and step options, and shutting it down. Used by the policy sampler (:mod:`rewardlab.models.vllm_sampler`,
``--engine vllm``) and the reward scorer (:mod:`rewardlab.models.vllm_scorer`, ``vllm:DIR`` reward specs).

- The engine runs **in this process** (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless set): weights pass as tensors,
  and no idle engine process polls beside torch (on a 2-core machine such a process slowed the torch work next to
  it about 3×). On a CPU its threads are torch's (``VLLM_CPU_OMP_THREADS_BIND=nobind`` unless set: vLLM's ``auto``
  binding keeps a core for a scheduler process there is none of here and pins this process's torch threads too).
  vLLM logs errors only, on stderr (stdout is the command's).
- Memory: on a CPU the KV cache gets 2 GiB (``VLLM_CPU_KVCACHE_SPACE``, in GiB, overrides it); on a GPU vLLM takes
  ``gpu_memory_utilization`` of the device (30% by default: the rest is the torch side's).
- On a CPU prompts are prefilled whole (no chunked prefill), so an engine step takes
  ``max(4096, max_model_len)`` tokens: vLLM 0.32 rewinds the seeded generator of a request whose prefill was split,
  and its CPU generators cannot rewind.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from rewardlab.errors import UserError

CPU_KV_CACHE_GIB = 2
CPU_STEP_TOKENS = 4096  # vLLM's default token budget of an engine step on a CPU
GPU_MEMORY_UTILIZATION = 0.3
DTYPE_NAMES = {"torch.float32": "float32", "torch.bfloat16": "bfloat16", "torch.float16": "float16"}


def configure_env() -> None:
    """The environment above, unless the user set it; call before importing vllm."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def check_platform(device: str, what: str) -> None:
    """UserError when this vLLM build runs on another device type than ``device`` (``what`` names the option)."""
    from vllm.platforms import current_platform

    if current_platform.device_type != device:
        raise UserError(f"{what}: this vLLM build runs on {current_platform.device_type}, the model is on {device} "
                        f"(--device {current_platform.device_type}, or the other vLLM build)")


def engine_options(device: str, max_model_len: int | None, gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
                   ) -> dict[str, Any]:
    """``LLM(...)`` keyword arguments for memory and engine steps on ``device`` (see the module docstring)."""
    options: dict[str, Any] = {"enforce_eager": True, "disable_log_stats": True}
    if device == "cpu" and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        options["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB << 30
    else:
        options["gpu_memory_utilization"] = gpu_memory_utilization
    if device == "cpu":
        options |= {"enable_chunked_prefill": False,
                    "max_num_batched_tokens": max(CPU_STEP_TOKENS, max_model_len or CPU_STEP_TOKENS)}
    return options


def dtype_name(dtype: Any) -> str:
    """vLLM's name of a torch dtype (float32, bfloat16, float16)."""
    return DTYPE_NAMES[str(dtype)]


_live: set[int] = set()  # ids of this process's engines that are started and not closed
_parked: list[Any] = []  # closed engines kept alive while another runs


def started(llm: Any) -> Any:
    """Record a new in-process engine (:func:`shutdown` needs to know whether others run)."""
    _live.add(id(llm))
    return llm


def shutdown(llm: Any) -> None:
    """Stop an in-process engine. Engines in one process share vLLM's process-wide parallel state, which an engine
    tears down when it shuts down or is garbage-collected: while another engine still runs (a ``vllm:`` reward beside
    ``--engine vllm`` sampling), a closed one is parked (its memory stays held) and the last close shuts them all."""
    if llm is None:
        return
    _live.discard(id(llm))
    _parked.append(llm)
    if _live:
        return
    while _parked:
        with contextlib.suppress(Exception):
            _parked.pop().llm_engine.engine_core.shutdown()
