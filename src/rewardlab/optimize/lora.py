"""LoRA on the policy of the optimize loops (``--lora-r R``; peft imported only when R > 0).

:func:`attach_lora` wraps the policy *in place* (peft injects the adapter into its modules, so the loops keep calling
the same model object) with a fresh adapter (B = 0: the adapted policy starts equal to the base) and freezes every
base weight; only the adapter is trained. The KL reference π₀ is then the same modules with the adapter switched
off (:class:`AdapterOff`, ``with peft_model.disable_adapter():``) instead of a frozen deep copy of the policy.

Memory, per parameter of the policy: full fine-tuning holds the fp32 master weights (4 bytes), the frozen reference
copy in ``--dtype`` (2 in bf16/fp16, 4 in fp32), an fp32 gradient (4) and AdamW's two fp32 moments (8): 18 bytes in
bf16. With LoRA the base is held once (4 bytes); gradients and AdamW state exist only for the adapter, r·(d_in + d_out)
values per adapted d_out × d_in matrix (a fraction ≈ 2r/d of it: 3% at r = 16, d = 1024). Dropping the reference
copy alone saves the model's size in ``--dtype``. Activations are about as in full fine-tuning.

Saving: the run's ``policy/`` is a plain HF causal-LM directory (loads with ``AutoModelForCausalLM``, usable as
``--policy`` anywhere): :func:`merged_state_dict` merges the adapter layer by layer into CPU tensors (W + ΔW, what
peft's ``merge_and_unload`` computes; the merged copy lives in host memory while it is written), so no second copy
of the model is made on the device and the base weights stay bit-identical. Checkpoints (``--resume``) hold the
adapter alone (``checkpoint/adapter``, peft's format). After a run the adapter stays attached (the policy object
computes the trained policy); :func:`detach_lora` removes it and gives the untouched base back.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch

ADAPTER = "default"


def has_lora(model: torch.nn.Module) -> bool:
    """Whether ``model``'s modules hold a peft adapter layer."""
    return any(hasattr(m, "base_layer") and hasattr(m, "lora_A") for m in model.modules())


def attach_lora(model: torch.nn.Module, r: int, alpha: int = 16, target: str = "all-linear"):
    """Wrap ``model`` in place with a fresh LoRA adapter of rank ``r`` (α = ``alpha``, ``target``: ``all-linear``
    or comma-separated module names) and freeze its base weights; returns the ``PeftModel`` (for
    ``disable_adapter``). GPT-2's ``Conv1D`` layers are adapted with ``fan_in_fan_out`` as peft requires. A bad
    rank, α or target is a :class:`~rewardlab.errors.UserError` (and leaves ``model`` as it was)."""
    import warnings

    from peft import LoraConfig, get_peft_model

    from rewardlab.errors import UserError

    if r <= 0 or alpha <= 0:
        raise UserError(f"--lora-r and --lora-alpha must be > 0 for LoRA, got {r} and {alpha}")
    if has_lora(model):
        raise ValueError("the policy already holds a LoRA adapter (detach_lora first)")
    targets = target if target == "all-linear" else [t.strip() for t in target.split(",") if t.strip()]
    conv1d = any(type(m).__name__ == "Conv1D" for m in model.modules())
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, fan_in_fan_out=conv1d)
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")  # refused below
            peft_model = get_peft_model(model, config)
    except ValueError as e:  # peft: "Target modules {...} not found in the base model"
        raise UserError(f"--lora-target {target!r}: {e}") from None
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    tied = [n for n, m in lora_layers(model).items() if uses[id(m.get_base_layer().weight)] > 1]
    if tied or not any(p.requires_grad for p in model.parameters()):
        detach_lora(model)
        for p, g in grads:
            p.requires_grad_(g)
        raise UserError(f"--lora-target {target!r}: " + (f"{tied[0]} shares its weight with another module (tied "
                        "embeddings), which a merged policy could not keep" if tied else "matches no module"))
    return peft_model


def detach_lora(model: torch.nn.Module) -> None:
    """Remove every adapter layer from ``model`` (each replaced by its untouched base layer, nothing merged) and make
    every weight trainable again, as a freshly loaded model is."""
    for name, module in list(model.named_modules()):
        if hasattr(module, "base_layer") and hasattr(module, "lora_A"):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())
    if "peft_config" in model.__dict__:
        del model.peft_config
    model.requires_grad_(True)


@contextlib.contextmanager
def restored(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """A block that may train a LoRA adapter on ``model`` (an optimize loop with ``lora_r > 0``): on exit the adapter
    is removed and every ``requires_grad``, dropout ``p`` (the loops set them to 0) and the train/eval mode are as
    before. The base weights are never written, so ``model`` is exactly as it was (the teachers' probes)."""
    grads = [(p, p.requires_grad) for p in model.parameters()]
    drops = [(m, m.p) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    training = model.training
    try:
        yield model
    finally:
        if has_lora(model):
            detach_lora(model)
        for p, g in grads:
            p.requires_grad_(g)
        for m, rate in drops:
            m.p = rate
        model.train(training)


def lora_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in model.named_modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A")}


@torch.no_grad()
def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of the merged model (W + ΔW for every adapted weight) under the base model's own keys, on the
    CPU, leaving ``model`` untouched (module docstring)."""
    layers = lora_layers(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if ".lora_" in key or key.startswith("lora_"):
            continue
        out[key.replace(".base_layer.", ".")] = value.detach().cpu()
    for name, layer in layers.items():
        base = layer.get_base_layer()
        delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A)
        out[f"{name}.weight"] = (base.weight + delta).to(base.weight.dtype).cpu()
    return out


def save_merged(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """``model`` (adapter attached) as a plain HF directory with the adapter merged (:func:`merged_state_dict`)."""
    model.save_pretrained(path, state_dict=merged_state_dict(model))


def save_adapter(peft_model, path: str | os.PathLike) -> None:
    """The adapter alone, in peft's format (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    peft_model.save_pretrained(path)


def load_adapter(peft_model, path: str | os.PathLike) -> None:
    """Load the adapter weights saved by :func:`save_adapter` into ``peft_model``'s adapter."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(Path(path) / "adapter_model.safetensors", device=str(next(peft_model.parameters()).device))
    result = set_peft_model_state_dict(peft_model, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{path}: the saved adapter does not fit this policy ({result.unexpected_keys[:3]} ...)")


class AdapterOff(torch.nn.Module):
    """π₀ of a LoRA policy: a view of the same modules that runs every forward with the adapter disabled. It owns no
    weights (``parameters()`` are the policy's, for the device); its ``forward`` has the model's signature, so the
    KV-cache keyword is found as for the model itself."""

    def __init__(self, model: torch.nn.Module, peft_model):
        super().__init__()
        self.config = model.config

        @functools.wraps(model.forward)
        def forward(*args, **kwargs):
            with peft_model.disable_adapter():
                return model(*args, **kwargs)

        self.forward = forward  # an instance attribute: not a submodule, no reference cycle
        self.parameters = model.parameters  # type: ignore[method-assign]
