"""Training configuration: one dataclass per objective, loadable from YAML, overridable from the command line.

Every field carries a one-line ``help`` (``field(metadata=...)``): ``rewardlab train --print-config`` documents the
schema from it. :func:`check_types` validates values with a strict pydantic model built from the dataclass (``"no"``
or ``"2"`` is not a bool or an int, ``1.5`` is not an int; an int is a fine float), :meth:`TrainConfig.problems`
checks their ranges; both report ``(key, message)`` pairs so that every bad key is named at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.errors import UserError
from rewardlab.tracking import report_to_problem

TINY_LR, PRETRAINED_LR = 1e-3, 2e-5
Problem = tuple[str, str]  # (key, message)


def opt(default: Any, help: str) -> Any:
    """A dataclass field with a one-line description (shown by ``rewardlab train --print-config``)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def field_help(cls: type, name: str) -> str:
    """The description of ``cls.name``, inherited from a base class when a subclass only changes the default."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata.get("help"):
            return f.metadata["help"]
    return ""


def _checkpoint_base(base: str) -> str | None:
    """The ``base`` a rewardlab checkpoint directory was trained from (None when ``base`` is not one)."""
    from rewardlab.models.formats.bt import trained_from

    return trained_from(base)


@dataclass
class TrainConfig:
    base: str = opt("tiny", "'tiny' (a small random GPT-2), an HF model directory (causal LM or encoder), a .gguf "
                    "file, or a rewardlab checkpoint")
    output: str = opt("runs/rm", "run directory: model, checkpoints, metrics.jsonl, run.json")
    epochs: int = opt(1, "passes over the training data")
    max_steps: int = opt(0, "> 0: train exactly this many optimizer steps, overriding epochs (as HF "
                         "TrainingArguments)")
    batch_size: int = opt(16, "pairs per optimizer micro-step and device")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    lr: float | None = opt(None, "learning rate; null: 1e-3 for 'tiny' (or a checkpoint trained from it), 2e-5 "
                           "for a pretrained backbone")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    warmup_ratio: float = opt(0.0, "fraction of the steps with a linear learning-rate warm-up (then linear decay)")
    max_grad_norm: float = opt(1.0, "clip the gradient norm to this (0: no clipping)")
    max_length: int = opt(512, "token budget of prompt + response")
    overlong: str = opt("truncate", "'truncate' or 'drop' responses longer than the budget")
    drop_ties: bool = opt(True, "drop pairs whose chosen and rejected ids are identical after truncation (counted)")
    use_margin: bool = opt(True, "use the rows' 'margin' field in the BT loss")
    centering: float = opt(0.0, "reward-centering coefficient η (e.g. 0.01)")
    label_smoothing: float = opt(0.0, "label smoothing ε in [0, 0.5) for noisy preferences")
    pooling: str | None = opt(None, "last | cls | mean; null: last for causal LMs, mean for encoders")
    head: str = opt("linear", "linear | mlp | native (the backbone's own transformers head)")
    num_outputs: int = opt(1, "k > 1: k independent BT heads on one backbone (a cheap ensemble)")
    lora_r: int = opt(0, "LoRA rank; > 0 enables LoRA on the backbone (the head is trained fully and saved)")
    lora_alpha: int = opt(16, "LoRA scaling α")
    lora_dropout: float = opt(0.0, "dropout of the LoRA adapters, in [0, 1)")
    lora_target: str = opt("all-linear", "LoRA target modules: 'all-linear' or comma-separated module names")
    bucket: bool = opt(True, "length-bucketed batches (little padding)")
    packing: str = opt("auto", "auto: a decoder encodes each pair's prompt once ([prompt | chosen | rejected] with a "
                       "block mask; exact) where its attention allows, else separately (said once) | off")
    disable_dropout: bool = opt(True, "switch the backbone's dropout off (as TRL's RewardConfig): dropout only adds "
                                "noise to reward differences")
    mixed_precision: str = opt("auto", "auto (bf16 on a capable GPU, else fp32) | no | bf16 | fp16")
    gradient_checkpointing: bool = opt(False, "recompute activations in backward: less memory, ~1/3 more compute")
    chat_template: str | None = opt(None, "a Jinja chat template file used instead of the tokenizer's (recorded "
                                    "in the model)")
    attn_implementation: str | None = opt(None, "transformers attention: eager, sdpa, flash_attention_2, ...")
    device: str = opt("auto", "auto (accelerate's choice: a GPU when present) | cpu | cuda")
    seed: int = opt(0, "random seed (model initialisation, batch order)")
    save_every: int = opt(0, "optimizer steps between checkpoints (0: at the end of each epoch only)")
    keep_checkpoints: int = opt(2, "checkpoints kept (the newest; >= 1)")
    log_every: int = opt(10, "optimizer steps between rows of metrics.jsonl")
    report_to: str | list[str] = opt("none", "also log the metrics.jsonl numbers to tensorboard (OUTPUT/runs/) and/or "
                                     "wandb: tensorboard | wandb | none, a comma list or a YAML list")
    eval_normalization: bool = opt(True, "store the eval split's reward mean/std as the manifest's normalization")
    tiny_layers: int = opt(2, "'tiny' base: transformer layers")
    tiny_embd: int = opt(64, "'tiny' base: hidden size (even)")
    tiny_vocab: int = opt(512, "'tiny' base: vocabulary of the tokenizer trained on the data")
    extra: dict[str, Any] = opt({}, "free-form values recorded with the config in run.json")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        data = read_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, origin=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "config") -> TrainConfig:
        """A validated config: unknown keys (with the nearest valid one), wrong types and bad values all fail at
        once, one ``ORIGIN: key: message`` line each."""
        names = [f.name for f in dataclasses.fields(cls)]
        problems = [(k, unknown_key(k, names)) for k in data if k not in names]
        values, type_problems = check_types(cls, {k: v for k, v in data.items() if k in names})
        cfg = cls(**values)
        bad = {k for k, _ in problems + type_problems}
        problems += type_problems + [p for p in cfg.problems() if p[0] not in bad]
        if problems:
            raise UserError(*[f"{origin}: {k}: {m}" for k, m in problems])
        return cfg

    def problems(self) -> list[Problem]:
        """``(key, message)`` for each value out of its range (types are checked by :func:`check_types`)."""
        checks = [
            ("epochs", self.epochs >= 1 or self.max_steps > 0, "must be >= 1 (or set max_steps)"),
            ("max_steps", self.max_steps >= 0, "must be >= 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("grad_accum", self.grad_accum >= 1, "must be >= 1"),
            ("lr", self.lr is None or self.lr > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio <= 1, "must be in [0, 1]"),
            ("max_grad_norm", self.max_grad_norm >= 0, "must be >= 0"),
            ("max_length", self.max_length >= 8, "must be >= 8"),
            ("overlong", self.overlong in ("truncate", "drop"), "must be truncate or drop"),
            ("centering", self.centering >= 0, "must be >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 0.5, "must be in [0, 0.5)"),
            ("pooling", self.pooling in (None, "last", "cls", "mean"), "must be last, cls or mean"),
            ("head", self.head in ("linear", "mlp", "native"), "must be linear, mlp or native"),
            ("num_outputs", self.num_outputs >= 1, "must be >= 1"),
            ("lora_r", self.lora_r >= 0, "must be >= 0"),
            ("lora_alpha", self.lora_alpha >= 1, "must be >= 1"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "must be in [0, 1)"),
            ("lora_target", bool(self.lora_target.strip()), "must name the target modules (or all-linear)"),
            ("packing", self.packing in ("auto", "off"), "must be auto or off"),
            ("mixed_precision", self.mixed_precision in ("auto", "no", "bf16", "fp16"),
             "must be auto, no, bf16 or fp16"),
            ("device", self.device in ("auto", "cpu", "cuda"), "must be auto, cpu or cuda (pick a GPU with "
             "CUDA_VISIBLE_DEVICES; several with accelerate launch)"),
            ("save_every", self.save_every >= 0, "must be >= 0"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "must be >= 1"),
            ("log_every", self.log_every >= 1, "must be >= 1"),
            ("tiny_layers", self.tiny_layers >= 1, "must be >= 1"),
            ("tiny_embd", self.tiny_embd >= 2 and self.tiny_embd % 2 == 0, "must be even and >= 2"),
            ("tiny_vocab", self.tiny_vocab >= 1, "must be >= 1"),
        ]
        problems = [(key, message) for key, ok, message in checks if not ok]
        return problems + [("report_to", p) for p in [report_to_problem(self.report_to)] if p]

    def validate(self, origin: str = "config") -> None:
        problems = self.problems()
        if problems:
            raise UserError(*[f"{origin}: {k}: {m}" for k, m in problems])

    def resolved_lr(self) -> float:
        """``lr``, or the default for the base: 1e-3 for the randomly initialised 'tiny' model (or a checkpoint
        trained from it), 2e-5 for a pretrained backbone — 1e-3 diverges a pretrained transformer, and TRL's reward
        and SFT recipes use 1e-5 to 5e-5."""
        if self.lr is not None:
            return self.lr
        return TINY_LR if self.base == "tiny" or _checkpoint_base(self.base) == "tiny" else PRETRAINED_LR

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the run: ``max_steps`` when set, else ``epochs × steps_per_epoch``."""
        return self.max_steps if self.max_steps > 0 else self.epochs * steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OBJECTIVES = ("bt", "dpo", "armo", "prm")


@dataclass
class RunOptions:
    """The options of ``rewardlab train`` outside the model's config: what to train, on which data."""

    objective: str = opt("bt", "bt: Bradley–Terry reward model | dpo: a DPO policy (reward spec dpo:OUTPUT) | armo: "
                         "ArmoRM heads + gating (needs rated) | prm: a process reward model on stepwise rows")
    data: str | None = opt(None, "training pairs (required): JSONL / Parquet / a saved datasets dir")
    eval: str | None = opt(None, "held-out pairs for per-epoch accuracy")
    split: str | None = opt(None, "split of a saved DatasetDict (data and eval)")
    eval_split: str | None = opt(None, "split of eval's DatasetDict (default: split), e.g. test when data and eval "
                                 "are the same directory")
    skip_invalid: bool = opt(False, "skip invalid rows (counted, listed in OUTPUT/skipped.txt) instead of failing")

    def problems(self) -> list[Problem]:
        if self.objective not in OBJECTIVES:
            return [("objective", f"must be {', '.join(OBJECTIVES[:-1])} or {OBJECTIVES[-1]}")]
        return []


@dataclass
class ArmoConfig:
    """``--objective armo``: attribute regression heads + a gating network on a frozen backbone (it trains in
    seconds: no checkpoints, no --resume)."""

    rated: str | None = opt(None, "armo: rated rows {prompt, response, attributes} (required)")
    verbosity: str | None = opt(None, "armo: the attribute to decorrelate the others from (e.g. verbosity)")
    ridge: float = opt(1.0, "armo: ridge penalty λ of the regression heads")
    base: str = opt("tiny", "'tiny' or a local HF model dir: the frozen backbone")
    output: str | None = opt(None, "the ArmoRM directory (required)")
    epochs: int = opt(50, "epochs of the gating network")
    lr: float = opt(1e-2, "learning rate of the gating network")
    gate_hidden: int = opt(64, "armo: hidden width of the gating network's MLP")
    gate_layers: int = opt(2, "armo: hidden layers of the gating network's MLP")
    seed: int = opt(0, "random seed")
    max_length: int = opt(512, "token budget of prompt + response")

    def problems(self) -> list[Problem]:
        checks = [("ridge", self.ridge >= 0, "must be >= 0"), ("epochs", self.epochs >= 1, "must be >= 1"),
                  ("lr", self.lr > 0, "must be > 0"), ("max_length", self.max_length >= 8, "must be >= 8"),
                  ("gate_hidden", self.gate_hidden >= 1, "must be >= 1"),
                  ("gate_layers", self.gate_layers >= 0, "must be >= 0")]
        return [(key, message) for key, ok, message in checks if not ok]


def unknown_key(key: Any, valid: Iterable[str]) -> str:
    """The message for an unknown key, naming the nearest valid one."""
    near = difflib.get_close_matches(str(key).replace("-", "_"), sorted(valid), n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}?" if near else "see rewardlab train --print-config for the valid keys"
    return f"unknown key ({hint})"


@functools.cache
def pydantic_model(cls: type) -> Any:
    """A strict pydantic model of the fields of the dataclass ``cls`` (types only: ranges are ``cls.problems``)."""
    import pydantic

    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (hints[f.name], None) for f in dataclasses.fields(cls)}
    return pydantic.create_model(f"{cls.__name__}Schema", __config__=pydantic.ConfigDict(strict=True), **fields)


def describe_type(hint: Any) -> str:
    """``int | None`` → 'an integer or null' (the words of a type error)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        return " or ".join(describe_type(a) for a in args) + (" or null" if type(None) in typing.get_args(hint) else "")
    origin = typing.get_origin(hint) or hint
    if origin is list:
        return "a list of strings" if args == [str] else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a mapping"}.get(origin, getattr(origin, "__name__", str(origin)))


def show(value: Any) -> str:
    """A value as YAML would write it (strings quoted), shortened."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def check_types(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """``(well-typed items, problems)`` for ``data``, items of ``cls``'s fields, under strict types: a bool is
    true/false (not "no", "yes" or 1), an int is not 1.5 nor "2", a string is not 5; an int is a fine float."""
    import pydantic

    model = pydantic_model(cls)
    try:
        model.model_validate(dict(data))
        return dict(data), []
    except pydantic.ValidationError as e:
        bad = list(dict.fromkeys(err["loc"][0] for err in e.errors() if err["loc"]))
    hints = typing.get_type_hints(cls)
    problems = [(k, f"expected {describe_type(hints[k])}, got {show(data[k])}{_hint(model, k, data[k])}")
                for k in bad]
    return {k: v for k, v in data.items() if k not in bad}, problems


def _hint(model: Any, key: str, value: Any) -> str:
    """Why a YAML value has the wrong type, when it is a classic: a quoted number/bool, an unquoted no/yes."""
    import pydantic

    if isinstance(value, bool):
        try:
            model.model_validate({key: "yes" if value else "no"})
            return " (YAML reads unquoted yes/no/on/off as true/false: quote the string)"
        except pydantic.ValidationError:
            return ""
    if isinstance(value, str):
        try:
            parsed = load_yaml_text(value)
            model.model_validate({key: parsed})
        except Exception:
            return ""
        return f" (a quoted string: write {show(parsed)} without quotes)"
    return ""


@functools.cache
def _loader() -> Any:
    """PyYAML's safe loader, also reading 1e-3 as a float (YAML 1.1 wants 1.0e-3 and makes 1e-3 a string)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))
    return Loader


def load_yaml_text(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML config file (UserError when unreadable, not YAML or not a mapping)."""
    import yaml

    try:
        data = load_yaml_text(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}:1: cannot read YAML config ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: config must be a mapping of option: value")
    return data
