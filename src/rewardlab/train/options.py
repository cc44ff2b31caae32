"""The options of ``rewardlab train``, from ``--config FILE`` (YAML) and the command line (flags override it).

:func:`load_options` checks every key before anything is created: unknown keys (naming the nearest valid one),
keys of another objective, wrong types (strict: see :func:`rewardlab.train.config.check_types`) and bad values are
all reported at once, one ``FILE: key: message`` line each (``--flag: message`` for a flag), as a UserError (exit 2).
:func:`render_config` writes the schema of an objective as commented YAML (``rewardlab train --print-config``),
generated from the dataclass fields and their ``help``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.errors import UserError
from rewardlab.train.config import (
    OBJECTIVES,
    ArmoConfig,
    Problem,
    RunOptions,
    TrainConfig,
    check_types,
    field_help,
    load_yaml_text,
    read_yaml,
    unknown_key,
)

# flags whose name is not --KEY (with - for _)
FLAG_NAMES = {"use_margin": "--margin/--no-margin", "disable_dropout": "--no-dropout/--dropout"}
# options of one invocation, never read from a config file
FLAG_ONLY = {"resume": "--resume", "overwrite": "--overwrite", "config": "--config",
             "print_config": "--print-config"}


def flag_name(key: str) -> str:
    return FLAG_NAMES.get(key, "--" + key.replace("_", "-"))


def config_class(objective: str) -> type:
    """The config dataclass of an objective."""
    if objective == "dpo":
        from rewardlab.train.dpo import DPOConfig

        return DPOConfig
    if objective == "prm":
        from rewardlab.train.prm import PRMConfig

        return PRMConfig
    return ArmoConfig if objective == "armo" else TrainConfig


def config_keys(objective: str) -> list[str]:
    """The keys of ``config_class(objective)`` that apply to it (DPO and PRM refuse some BT options)."""
    excluded: tuple[str, ...] = ()
    if objective == "dpo":
        from rewardlab.train.dpo import IGNORED as excluded
    elif objective == "prm":
        from rewardlab.train.prm import BT_ONLY as excluded
    return [f.name for f in dataclasses.fields(config_class(objective)) if f.name not in excluded]


def run_keys(objective: str) -> list[str]:
    return [f.name for f in dataclasses.fields(RunOptions) if not (objective == "armo" and f.name == "skip_invalid")]


def all_keys(objective: str) -> list[str]:
    return run_keys(objective) + config_keys(objective)


@dataclass
class Options:
    """What ``rewardlab train`` was asked: the run options, the objective's config, and where each key came from."""

    run: RunOptions
    cfg: Any  # TrainConfig, DPOConfig, PRMConfig or ArmoConfig
    origin: dict[str, str]  # key -> the config file or the flag that set it (absent: the default)

    @property
    def objective(self) -> str:
        return self.run.objective

    def values(self) -> dict[str, Any]:
        """Every key of the objective with its value."""
        return {**{k: getattr(self.run, k) for k in run_keys(self.objective)},
                **{k: getattr(self.cfg, k) for k in config_keys(self.objective)}}


def load_options(config: str | Path | None, flags: Mapping[str, Any]) -> Options:
    """The options of a run from the YAML file ``config`` (optional) and ``flags`` (keys as in the YAML; None:
    not given), flags winning; raises UserError listing every bad key (see the module docstring)."""
    yaml_data = read_yaml(config) if config is not None else {}
    where = str(config)
    flags = {k: v for k, v in flags.items() if v is not None}
    objective = flags.get("objective", yaml_data.get("objective", "bt"))
    if objective not in OBJECTIVES:
        source = flag_name("objective") if "objective" in flags else f"{where}: objective"
        raise UserError(f"{source}: must be {', '.join(OBJECTIVES[:-1])} or {OBJECTIVES[-1]}, got {objective!r}")
    valid = all_keys(objective)
    problems: list[tuple[str, Problem]] = []  # (origin, (key, message))
    for key in yaml_data:
        if key in valid:
            continue
        if key in FLAG_ONLY:
            message = f"an option of one run, not of a config: pass {FLAG_ONLY[key]}"
        else:
            message = _elsewhere(key, objective) or unknown_key(key, valid)
        problems.append((where, (str(key), message)))
    problems += [(flag_name(k), (k, m)) for k in flags if k not in valid
                 for m in [_elsewhere(k, objective) or "not an option of rewardlab train"]]
    given = {k: v for k, v in yaml_data.items() if k in valid}
    run_vals, run_bad = check_types(RunOptions, {k: v for k, v in given.items() if k in run_keys(objective)})
    cls = config_class(objective)
    cfg_vals, cfg_bad = check_types(cls, {k: v for k, v in given.items() if k in config_keys(objective)})
    problems += [(where, p) for p in run_bad + cfg_bad]
    origin = {k: where for k in {**run_vals, **cfg_vals}}
    for k, v in flags.items():
        if k in valid:
            (run_vals if k in run_keys(objective) else cfg_vals)[k] = v
            origin[k] = flag_name(k)
    run, cfg = RunOptions(**run_vals), cls(**cfg_vals)
    reported = {p[0] for _, p in problems}
    problems += [(origin.get(k, where if config else "flags"), (k, m)) for k, m in run.problems() + cfg.problems()
                 if k not in reported]
    if problems:
        order = {k: i for i, k in enumerate(yaml_data)}  # in the file's order, then the flags
        problems.sort(key=lambda p: (p[0] != where, order.get(p[1][0], len(order))))
        raise UserError(*[f"{src}: {m}" if src.startswith("-") else f"{src}: {k}: {m}" for src, (k, m) in problems])
    return Options(run, cfg, origin)


def _elsewhere(key: Any, objective: str) -> str | None:
    """'does not apply to --objective X (only to Y)' for a key of other objectives, else None."""
    owners = [o for o in OBJECTIVES if o != objective and key in all_keys(o)]
    if not owners:
        return None
    return f"does not apply to --objective {objective} (only to {', '.join(owners)})"


def _item(key: str, value: Any) -> str:
    """``key: value`` in YAML that reads back (through our loader) as ``value``."""
    import json

    import yaml

    line = yaml.safe_dump({key: value}, allow_unicode=True, default_flow_style=False, width=10**6,
                          sort_keys=False).rstrip("\n")
    if "\n" in line or load_yaml_text(line) != {key: value}:
        line = f"{key}: {json.dumps(value, ensure_ascii=False)}"
    return line


def render_config(objective: str = "bt", values: Mapping[str, Any] | None = None,
                  flags: Iterable[str] = ()) -> str:
    """Every key of ``objective`` as commented YAML: a line of description (and its flag, for keys in ``flags``)
    above ``key: value``, the value from ``values`` or the default."""
    values = dict(values or {})
    flags = set(flags)
    cls = config_class(objective)
    lines = [f"# rewardlab train --objective {objective}: every option, loadable with --config FILE (command-line",
             "# flags override its values). Paths are relative to the current directory. Written by",
             "# `rewardlab train [--objective bt|dpo|armo|prm] --print-config`."]
    for title, klass, keys in (("what to train, on which data", RunOptions, run_keys(objective)),
                               (f"the {objective} model and its training", cls, config_keys(objective))):
        lines += ["", f"# --- {title} ---"]
        fields = {f.name: f for f in dataclasses.fields(klass)}
        for key in keys:
            f = fields[key]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if key == "objective":
                default = objective
            value = values.get(key, default)
            note = "" if value == default else f" [default: {_item(key, default).split(': ', 1)[1]}]"
            flag = f" ({flag_name(key)})" if key in flags else ""
            lines += [f"# {field_help(klass, key)}{flag}{note}", _item(key, value)]
    here = all_keys(objective)
    owners: dict[str, list[str]] = {}
    for o in OBJECTIVES:
        for k in all_keys(o):
            if o != objective and k not in here:
                owners.setdefault(k, []).append(o)
    others = [f"{k} ({', '.join(owners[k])})" for k in sorted(owners)]
    lines += ["", "# keys of the other objectives (see --objective X --print-config):"]
    lines += [f"#   {line}" for line in _wrap(others)]
    return "\n".join(lines) + "\n"


def _wrap(words: list[str], width: int = 110) -> list[str]:
    import textwrap

    return textwrap.wrap(", ".join(words), width=width)
