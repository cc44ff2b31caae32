"""Training configuration: one dataclass, loadable from YAML, overridable from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.errors import UserError

TINY_LR, PRETRAINED_LR = 1e-3, 2e-5


def _checkpoint_base(base: str) -> str | None:
    """The ``base`` a rewardlab checkpoint directory was trained from (None when ``base`` is not one)."""
    import json

    try:
        return json.loads((Path(base) / "rewardlab.json").read_text()).get("base")
    except (OSError, ValueError, AttributeError):
        return None


@dataclass
class TrainConfig:
    base: str = "tiny"  # "tiny", an HF model directory (causal LM or encoder), or a rewardlab checkpoint
    output: str = "runs/rm"
    epochs: int = 1
    max_steps: int = 0  # > 0: train exactly this many optimizer steps, overriding epochs (as HF TrainingArguments)
    batch_size: int = 16  # pairs per optimizer micro-step and device
    grad_accum: int = 1
    lr: float | None = None  # None: 1e-3 for 'tiny', 2e-5 for a pretrained backbone (see resolved_lr)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    overlong: str = "truncate"  # or "drop"
    drop_ties: bool = True  # drop pairs whose chosen/rejected ids are identical after truncation (counted)
    use_margin: bool = True  # use the rows' "margin" field in the BT loss
    centering: float = 0.0
    label_smoothing: float = 0.0
    pooling: str | None = None  # default: "last" for causal LMs, "mean" for encoders
    head: str = "linear"
    num_outputs: int = 1  # k > 1: k independent BT heads on one backbone (a cheap ensemble)
    lora_r: int = 0  # > 0 enables LoRA on the backbone (the head is trained fully and saved)
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target: str = "all-linear"
    bucket: bool = True  # length-bucketed batches (little padding)
    disable_dropout: bool = True  # like TRL's RewardConfig: dropout only adds noise to reward differences
    mixed_precision: str = "auto"  # "auto" = bf16 on a capable GPU, else fp32; or "no" / "bf16" / "fp16"
    gradient_checkpointing: bool = False  # recompute activations in backward (use_reentrant=False): less memory
    chat_template: str | None = None  # a Jinja template file used instead of the tokenizer's (recorded in the RM)
    attn_implementation: str | None = None  # transformers' attention: eager, sdpa, flash_attention_2, ...
    device: str = "auto"  # "auto" = accelerate's choice (a GPU when present), "cpu" forces the CPU, "cuda"
    seed: int = 0
    save_every: int = 0  # optimizer steps between checkpoints (0 = end of each epoch only)
    keep_checkpoints: int = 2
    log_every: int = 10
    eval_normalization: bool = True  # store the eval split's reward mean/std as the manifest's "normalization"
    tiny_layers: int = 2
    tiny_embd: int = 64
    tiny_vocab: int = 512
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f"{path}:1: cannot read YAML config ({e})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}:1: config must be a mapping of option: value")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, origin=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"{origin}:1: unknown option(s) {', '.join(unknown)}")
        cfg = cls(**data)
        cfg.validate(origin)
        return cfg

    def validate(self, origin: str = "config") -> None:
        checks = [
            (self.epochs >= 1 or self.max_steps > 0, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.lr is None or self.lr > 0, "lr must be > 0"),
            (self.max_length >= 8, "max_length must be >= 8"),
            (self.overlong in ("truncate", "drop"), "overlong must be 'truncate' or 'drop'"),
            (0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)"),
            (self.pooling in (None, "last", "cls", "mean"), "pooling must be last, cls or mean"),
            (self.mixed_precision in ("auto", "no", "bf16", "fp16"), "mixed_precision must be auto, no, bf16, fp16"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda (pick a GPU with "
             "CUDA_VISIBLE_DEVICES; several with accelerate launch)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{origin}: {message}")

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
