"""What ``rewardlab train --help`` shows as each option's default, and ``--dtype``, the name every other command
uses for precision.

The flags of ``train`` default to None ("not given"), so that a value from ``--config`` is not overridden; typer
therefore cannot show their defaults itself. :func:`shown` renders the default of a config key for ``show_default``:
``--objective bt``'s, then each other objective's that differs (``16; dpo: 8``), read from the config dataclasses
(:mod:`rewardlab.train.config`, stdlib only) — except DPO's and PRM's, whose classes import torch (too slow for
``--help``): their changed defaults are :data:`OTHER_DEFAULTS`, checked against the classes by
``tests/test_cli_names.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rewardlab.errors import UserError
from rewardlab.train.config import PRETRAINED_LR, TINY_LR, ArmoConfig, RunOptions, TrainConfig

OTHER_DEFAULTS: dict[str, dict[str, Any]] = {  # what DPOConfig and PRMConfig change or add to TrainConfig
    "dpo": {"beta": 0.1, "lr": 1e-4, "batch_size": 8},
    "prm": {"max_length": 1024, "step_separator": "\n", "last_step_only": False},
}
# --dtype, as every command names precision, is train's mixed precision: autocast, fp32 master weights
MIXED_PRECISION_OF_DTYPE = {"auto": "auto", "bf16": "bf16", "fp16": "fp16", "fp32": "no"}
DTYPE_HELP = ("auto (bf16 on a CUDA GPU that supports it, else fp32), bf16, fp16 or fp32: the precision of the "
              "forward passes (autocast; weights and optimizer state stay fp32). The same setting as "
              "--mixed-precision (fp32 = no), under the name the other commands use.")


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def objective_defaults() -> dict[str, dict[str, Any]]:
    """Each objective's defaults of the keys it has (dataclass defaults; None: no default)."""
    bt = _defaults(RunOptions) | _defaults(TrainConfig)
    return {"bt": bt, "dpo": bt | OTHER_DEFAULTS["dpo"], "prm": bt | OTHER_DEFAULTS["prm"],
            "armo": _defaults(RunOptions) | _defaults(ArmoConfig)}


def _show(value: Any, on: str, off: str) -> str:
    if isinstance(value, bool) and (on or off):
        return on if value else off
    if isinstance(value, str):
        return value.encode("unicode_escape").decode() if value.strip() == value and value else repr(value)
    return str(value)


def shown(key: str, on: str = "", off: str = "") -> str | bool:
    """``show_default`` for the flag of config ``key``: ``bt``'s default, then ``objective: value`` for each other
    objective with a different one (``on``/``off``: a boolean shown as its flag name). False when no objective
    has a default for it (nothing is shown)."""
    per = objective_defaults()
    lr = f"{TINY_LR:g} for a 'tiny' base, {PRETRAINED_LR:g} for a pretrained one"
    base = lr if key == "lr" else per["bt"].get(key)
    parts = [] if base is None else [base if key == "lr" else _show(base, on, off)]
    for objective in ("dpo", "prm", "armo"):
        value = per[objective].get(key)
        if value is not None and (key == "lr" or value != per["bt"].get(key)):
            parts.append(f"{objective}: {_show(value, on, off)}")
    return "; ".join(parts) or False


def mixed_precision(mixed: str | None, dtype: str | None) -> str | None:
    """The ``mixed_precision`` key from ``--mixed-precision`` and ``--dtype`` (None: neither given)."""
    if dtype is None:
        return mixed
    if dtype not in MIXED_PRECISION_OF_DTYPE:
        raise UserError(f"--dtype {dtype!r}: choose from {', '.join(MIXED_PRECISION_OF_DTYPE)}")
    if mixed is not None and mixed != MIXED_PRECISION_OF_DTYPE[dtype]:
        raise UserError(f"--dtype {dtype} and --mixed-precision {mixed} disagree: give one of them")
    return MIXED_PRECISION_OF_DTYPE[dtype]
