"""What every format leaf shares: the :class:`Format` record, the :class:`Loaded` result, the file names of a
rewardlab checkpoint, and the strict loading helpers (safetensors only, no random weights).

Leaves import this module and, where one format is built on another, that leaf; never the package
(:mod:`rewardlab.models.formats`), which imports them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.errors import UserError

MANIFEST = "rewardlab.json"  # a rewardlab checkpoint's manifest (head, rendering, max length, normalization, ...)
WEIGHTS = "model.safetensors"
CONFIG = "config.json"  # a transformers model's config
TOKENIZER_CONFIG = "tokenizer_config.json"


@dataclass(frozen=True)
class Format:
    """One kind of model directory. ``detect(dir)`` looks at files only (no weights are read); ``load(dir, device=,
    dtype=, attn_implementation=)`` returns a :class:`Loaded`. ``manifest`` is the file :func:`peek` reads (None: the
    directory has no rewardlab manifest of its own)."""

    name: str
    title: str
    detect: Callable[[Path], bool]
    load: Callable[..., Loaded]
    manifest: str | None = None

    def __repr__(self) -> str:
        return f"Format({self.name!r})"


@dataclass
class Loaded:
    """A loaded model directory: the model, its tokenizer, its manifest (read, or synthesized for imported models;
    ``source`` says where it came from), the :class:`~rewardlab.data.tokenize.Rendering` its inputs get (also set on
    ``model.rendering``), and the format's other pieces in ``parts`` (a DPO run's ``reference``, ...).

    Unpacks (and indexes) as ``model, tokenizer, manifest``, the tuple the loaders returned before this class."""

    format: Format
    path: Path
    model: Any
    tokenizer: Any
    manifest: dict[str, Any]
    rendering: Any = None
    parts: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer, self.manifest))

    def __getitem__(self, index: int) -> Any:
        return (self.model, self.tokenizer, self.manifest)[index]

    def with_chat_template(self, template: str | None) -> Loaded:
        """The chat-template override (template text; None: unchanged), applied to the rendering, the model's
        rendering and the manifest's record of it: the one place an override is applied to a loaded model."""
        if template is None or self.rendering is None:
            return self
        self.rendering = with_chat_template(self.rendering, template)
        self.model.rendering = self.rendering
        self.manifest = {**self.manifest, "rendering": self.rendering.to_dict()}
        return self


def with_chat_template(rendering, template: str | None):
    """``rendering`` with its chat template replaced by ``template`` (None: ``rendering`` itself)."""
    return rendering if template is None else dataclasses.replace(rendering, chat_template=template)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON file of a model directory; UserError ``FILE:1: cannot read the WHAT`` when it is not readable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}:1: cannot read the {what} ({e})") from None


def is_model_dir(path: str | os.PathLike) -> bool:
    """A transformers model directory (it has a ``config.json``): a base model, a policy, or any format above."""
    return (Path(path) / CONFIG).exists()


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """``DIR/config.json`` as a dict (UserError when unreadable)."""
    return read_json(Path(path) / CONFIG, "model config")


def config_architectures(path: Path) -> list[str] | None:
    """The ``architectures`` of ``DIR/config.json``; None when there is no readable config."""
    try:
        return [str(a) for a in json.loads((path / CONFIG).read_text()).get("architectures") or []]
    except (OSError, ValueError, AttributeError):
        return None


def check_loaded(result, where: str | os.PathLike) -> None:
    """Raise UserError when ``load_state_dict(strict=False)`` left real weights missing or found unknown ones.
    Derived buffers (attention bias masks, rotary frequencies) may be absent from a file; weights may not."""
    derived = (".bias_mask", ".masked_bias", ".attn.bias", "rotary_emb.inv_freq")
    missing = [k for k in result.missing_keys if not k.endswith(derived)]
    if missing or result.unexpected_keys:
        raise UserError(f"{where}: weights do not match the config (missing {missing[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]})")


def require_safetensors(p: Path) -> None:
    """UserError unless ``p`` holds ``.safetensors`` weights (rewardlab never loads pickle)."""
    if not any(p.glob("*.safetensors")):
        found = ", ".join(sorted(f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt")))
        raise UserError(f"{p}: no .safetensors weights{f' (found {found})' if found else ''}; rewardlab never loads "
                        "pickle — convert with `model.save_pretrained(dir, safe_serialization=True)`")


@contextlib.contextmanager
def no_progress_bar():
    """transformers draws a 'Loading weights' bar per load; rewardlab's commands have their own output."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def strict_from_pretrained(auto_class, path: Path, dtype, attn_implementation: str | None = None, *,
                           covered: frozenset[str] | set[str] = frozenset(),
                           missing: str = "weights missing from the checkpoint", where: Path | None = None,
                           hint: str = "", **kwargs):
    """``auto_class.from_pretrained(path)`` the one way rewardlab calls it: safetensors only, no progress bar, and a
    UserError (``WHERE: MISSING (keys); refusing to score with randomly initialised ones HINT``) when a weight is in
    neither the files nor ``covered`` (weights another file brings, e.g. a PEFT adapter's head) — never a random
    head. ``kwargs`` go to ``from_pretrained`` (``num_labels``, ...)."""
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with no_progress_bar():
        model, info = auto_class.from_pretrained(path, use_safetensors=True, dtype=dtype, output_loading_info=True,
                                                 **kwargs)
    absent = sorted(k for k in info.get("missing_keys") or () if k not in covered)
    if absent:
        raise UserError(f"{where or path}: {missing} ({', '.join(absent[:3])}{', ...' if len(absent) > 3 else ''}); "
                        f"refusing to score with randomly initialised ones{hint}")
    return model
