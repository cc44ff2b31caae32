"""Resolve a reward *spec* string into a :class:`~rewardlab.rewards.base.Reward`.

Spec forms:
- ``PATH`` — a model directory, scored by the Reward class of its format (:func:`rewardlab.models.formats.detect`,
  :data:`REWARD_CLASSES`): a rewardlab checkpoint, or a transformers ``*ForSequenceClassification`` / OpenRLHF
  reward model / PEFT adapter directory (hub RMs, TRL and OpenRLHF outputs) → ModelReward
  (:mod:`rewardlab.rewards.model`); a PRM, an ArmoRM, a MiCRo mixture or a DPO run → the class of its spec form
  below. A hub id ``org/name[@revision]`` that is not a local path is its snapshot in the HF cache
  (:mod:`rewardlab.hub`)
- ``python:MODULE:FUNCTION`` — a per-item ``fn(prompt, response) -> float`` or a TRL-style batched
  ``fn(prompts, completions, **kwargs) -> list[float]`` (rule: :func:`~rewardlab.rewards.base.is_batched_function`)
  → FunctionReward; MODULE is imported with the current directory on ``sys.path`` (:func:`import_function`)
- ``ensemble:METHOD[=LAMBDA]:SPEC1,SPEC2,...`` — mean / wco / uwo over member specs, each member standardized with
  its manifest's ``normalization`` (``rewardlab calibrate``) → EnsembleReward (rewards/ensemble.py);
  ``ensemble:brme=λ:SPEC1,...`` is BRME (Yan et al. 2024): each member a k-head checkpoint read as one Gaussian head
  (mean, std of its outputs), ``λ·(the head of lowest std) + (1 − λ)·(the lowest head mean)``, λ ∈ [0, 1] required
- ``maxmin[=raw]:SPEC1,SPEC2,...`` — MaxMin-RLHF's worst group: per call, the group (member output, mixture head)
  with the lowest mean reward, each group standardized on π₀'s samples → MaxMinReward (rewards/maxmin.py)
- ``http://HOST:PORT`` / ``https://...`` — a running reward server (native protocol; ``openrlhf+http://...`` for an
  OpenRLHF-protocol server); the bearer token comes from ``$REWARDLAB_TOKEN`` → RemoteReward
- ``rule:NAME:ARG`` — a verifiable rule (exact / numeric / regex / length) → FunctionReward (rewards/rules.py)
- ``mix:FILE.yaml`` — weighted sums, gates and CGPO-style constraint judges over other specs (rewards/rules.py)
- ``dpo:POLICY_DIR[:REF_DIR[:BETA]]`` — implicit DPO reward β·(log π − log π_ref) → ImplicitDPOReward; a
  ``rewardlab train --objective dpo`` output directory alone knows its reference and β (also as a bare PATH)
- ``armo:DIR`` — a multi-objective (ArmoRM) checkpoint: gated attribute scores → ArmoReward (also as a bare PATH)
- ``dpa:DIR:DIRECTION`` — directional preference ⟨unit direction, attribute scores⟩ of an ArmoRM or k-output
  checkpoint; DIRECTION = ``name=w,...`` or ``w1,w2,...`` → DirectionalReward
- ``judge:TARGET[:pairwise|pointwise][:KEY=VALUE,...]`` — a causal LM (directory, .gguf, ``smollm2``, or
  ``openai/MODEL`` via ``$OPENAI_BASE_URL``/``$OPENAI_API_KEY``) as a generative judge → JudgeReward
  (rewards/judge_spec.py)
- ``micro:DIR[:router|min|mean|head=K]`` — a mixture of K BT heads with a context router → MixtureReward
  (rewards/personalized.py; a bare PATH with ``router.safetensors`` loads the same)
- ``prm:DIR[:min|last|product|mean]`` — a process reward model (rewardlab PRM or transformers token classifier), step
  rewards aggregated (default min) → PRMReward (rewards/prm.py; a bare PRM PATH loads the same)
- ``ppoc:[w=W,alpha=A,mean=M:]SPEC`` — PPO-C's calibrated reward: SPEC's reward of the answer without its
  ``Confidence: N`` statement, moved by w·(r − running mean)·(N/10 − 0.5) → PPOCReward (rewards/calibrated.py)
- ``vllm:PATH`` — a decoder reward model (directory or hub id, as a bare PATH) scored on vLLM's pooling runner: the
  same rendering, token ids and scores as the bare PATH, vLLM's forward → VLLMReward (rewards/vllm.py)
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward, Reward

# A model directory's format (rewardlab.models.formats) -> the Reward class that scores it: (module, class, the
# load_reward options its from_pretrained takes). Every other directory is a ModelReward (DEFAULT_REWARD_CLASS),
# which loads the pooled view or says why the directory is no reward model.
REWARD_CLASSES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "prm": ("rewardlab.rewards.prm", "PRMReward", ("dtype",)),
    "micro": ("rewardlab.rewards.personalized", "MixtureReward", ()),
    "dpo": ("rewardlab.rewards.implicit", "ImplicitDPOReward", ()),
    "armo": ("rewardlab.rewards.multiobjective", "ArmoReward", ()),
}
DEFAULT_REWARD_CLASS = ("rewardlab.rewards.model", "ModelReward", ("dtype", "chat_template", "attn_implementation"))


def load_reward(spec: str, device: str | None = None, dtype: str | None = None, chat_template: str | None = None,
                attn_implementation: str | None = None) -> Reward:
    """Build the Reward that ``spec`` names (see the module docstring for the forms).

    ``device``/``dtype`` follow :mod:`rewardlab.models.device` (``None`` = ``auto``). ``dtype`` applies to
    reward-model directories, PRMs and local judges; ``chat_template`` (template text overriding the model's) and
    ``attn_implementation`` to reward-model directories; the other families keep their own settings."""
    from rewardlab.models.device import resolve_device

    device = str(resolve_device(device))
    if spec.startswith("python:"):
        return FunctionReward(import_function(spec), name=spec.rsplit(":", 1)[-1])
    if spec.startswith("ensemble:"):
        from rewardlab.rewards.ensemble import ensemble_from_spec

        return ensemble_from_spec(spec, lambda s: load_reward(s, device=device, dtype=dtype))
    if spec.startswith(("maxmin:", "maxmin=")):
        from rewardlab.rewards.maxmin import maxmin_from_spec

        return maxmin_from_spec(spec, lambda s: load_reward(s, device=device, dtype=dtype))
    if spec.startswith(("http://", "https://", "openrlhf+http://", "openrlhf+https://")):
        from rewardlab.rewards.remote import RemoteReward

        protocol, _, url = spec.rpartition("+")
        return RemoteReward(url, token=os.environ.get("REWARDLAB_TOKEN"), protocol=protocol or "native")
    if spec.startswith("rule:"):
        from rewardlab.rewards.rules import rule_from_spec

        return rule_from_spec(spec)
    if spec.startswith("mix:"):
        from rewardlab.rewards.rules import mixture_from_spec

        return mixture_from_spec(spec, lambda s: load_reward(s, device=device, dtype=dtype))
    if spec.startswith("dpo:"):
        from rewardlab.rewards.implicit import implicit_from_spec

        return implicit_from_spec(spec, device=device)
    if spec.startswith(("armo:", "dpa:")):
        from rewardlab.rewards.multiobjective import multiobjective_from_spec

        return multiobjective_from_spec(spec, device=device)
    if spec.startswith("judge:"):
        from rewardlab.rewards.judge_spec import judge_from_spec

        return judge_from_spec(spec, device=device, dtype=dtype)
    if spec.startswith("micro:"):
        from rewardlab.rewards.personalized import mixture_reward_from_spec

        return mixture_reward_from_spec(spec, device=device)
    if spec.startswith("ppoc:"):
        from rewardlab.rewards.calibrated import ppoc_from_spec

        return ppoc_from_spec(spec, lambda s: load_reward(s, device=device, dtype=dtype))
    if spec.startswith("vllm:"):
        from rewardlab.rewards.vllm import vllm_reward_from_spec

        return vllm_reward_from_spec(spec, device=device, dtype=dtype, chat_template=chat_template,
                                     attn_implementation=attn_implementation)
    from rewardlab.hub import local_model_path
    from rewardlab.models.formats import detect

    spec = local_model_path(spec)  # a hub id (org/name[@revision]): its snapshot in the HF cache, downloaded if needed
    if spec.startswith("prm:"):  # a process reward model: step rewards aggregated
        from rewardlab.rewards.prm import prm_from_spec

        return prm_from_spec(spec, device=device, dtype=dtype)
    path = Path(spec)
    if path.is_dir():  # what the directory is, the format seam says; its Reward class loads it
        fmt = detect(path)
        module, name, takes = REWARD_CLASSES.get(fmt.name if fmt is not None else "", DEFAULT_REWARD_CLASS)
        options = {"dtype": dtype, "chat_template": chat_template, "attn_implementation": attn_implementation}
        cls = getattr(importlib.import_module(module), name)
        return cls.from_pretrained(path, device=device, **{k: options[k] for k in takes})
    raise UserError(f"reward spec {spec!r}: not a checkpoint directory, a hub id (org/name) or a known spec form "
                    "(python:MODULE:FN, ensemble:METHOD:SPECS, maxmin:SPECS, http://HOST:PORT, rule:, mix:, dpo:, "
                    "armo:, dpa:, judge:, micro:, prm:, ppoc:, vllm:)")


def import_function(spec: str):
    """The callable a ``python:MODULE:FUNCTION`` spec names. MODULE is imported with the current working directory
    first on ``sys.path`` (restored afterwards), so ``python:my_rewards:fn`` finds ``./my_rewards.py`` whatever
    the entry point; any failure is a one-line UserError naming the module and the directory."""
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts[1:]):
        raise UserError(f"reward spec {spec!r}: expected python:MODULE:FUNCTION")
    _, module_name, fn_name = parts
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 -- ImportError, SyntaxError, or the module's own failure
        raise UserError(f"reward spec {spec!r}: cannot import module {module_name!r} from {cwd}: "
                        f"{type(e).__name__}: {e}") from None
    finally:
        if added:
            sys.path.remove(cwd)
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise UserError(f"reward spec {spec!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
                        f"function {fn_name!r}")
    return fn
