"""One name per concept across commands: samples per prompt is --num-samples / -m everywhere (the old names stay as
aliases), every command that runs a model takes --device and --dtype, every --help shows the defaults, --version
answers, lab --only names every experiment."""

import dataclasses

import pytest

from rewardlab import __version__

# commands that run no model of the user's choosing, and why they take no --device / --dtype (README: "Devices")
NO_MODEL = {
    "export": "converts a checkpoint's weights on the CPU, in fp32; no forward pass",
    "lab": "--preset fixes every experiment (the transformer level runs on CUDA when present)",
    "study": "--preset fixes the setup (the policy runs on CUDA when present, in fp32)",
    "data validate": "reads data only",
    "data stats": "a tokenizer only",
    "data show": "a tokenizer only",
    "overopt": "reads optimize run directories only",
    "data confidence-pairs": "rewrites pairs (PPO-M's confidence statements); no model",
}


def leaf_commands() -> list[tuple[str, object]]:
    """(name as typed, e.g. 'optimize bon', click command) for every command of the app."""
    import typer.main

    from rewardlab.cli import app

    group = typer.main.get_command(app)
    out = []
    for name, command in group.commands.items():
        subs = getattr(command, "commands", None)
        out += [(f"{name} {n}", c) for n, c in subs.items()] if subs else [(name, command)]
    return out


def options(command) -> list:
    from typer.core import TyperOption

    return [p for p in command.params if isinstance(p, TyperOption)]


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"rewardlab {__version__}"


@pytest.mark.parametrize("command,alias", [("eval", None), ("teachers", None), ("calibrate", "--samples"),
                                           ("optimize bon", "--n"), ("optimize rloo", "--k"),
                                           ("optimize grpo", "--k"), ("optimize raft", "--k"),
                                           ("optimize dpo", "--k")])
def test_samples_per_prompt_has_one_name(cli, command, alias):
    code, out, _ = cli(*command.split(), "--help")
    assert code == 0 and "--num-samples" in out and "-m" in out
    if alias:
        assert alias in out  # the old name still works


def test_lab_only_lists_every_experiment(cli):
    from rewardlab.lab.runner import MODULES

    _, out, _ = cli("lab", "--help")
    flat = " ".join(out.split())
    assert all(name in flat for name in MODULES)


@pytest.mark.parametrize("loop", ["rloo", "grpo", "raft", "dpo"])
def test_rl_loops_checkpoint_by_default(cli, loop):
    code, out, _ = cli("optimize", loop, "--help")
    flat = " ".join(out.replace("│", " ").split())  # the help's table borders split the sentence
    assert code == 0 and "a killed run continues with --resume" in flat and "[default: 10]" in flat


def test_no_internal_module_paths_in_help(cli):
    import re

    for name, _ in leaf_commands():
        code, out, _ = cli(*name.split(), "--help")
        flat = " ".join(out.replace("│", " ").split())
        assert code == 0 and not re.search(r"rewardlab\.(?!json)[a-z_]+", flat), name  # rewardlab.json is a file


def test_every_command_that_runs_a_model_takes_device_and_dtype():
    """One option each, one default (auto), one help (models.device.device_option/dtype_option); a new command must
    take them or be listed in NO_MODEL with its reason. train's flags default to None (a --config value must not be
    overridden) and say what train does differently: accelerate places it, and --dtype is its mixed precision."""
    from rewardlab.models.device import DEVICE_HELP, DTYPE_HELP
    from rewardlab.train.flag_defaults import DTYPE_HELP as TRAIN_DTYPE_HELP

    commands = dict(leaf_commands())
    assert set(NO_MODEL) <= set(commands)  # no stale exemption
    for name, command in commands.items():
        opts = {o: p for p in options(command) for o in p.opts}
        if name in NO_MODEL:
            assert "--device" not in opts, f"{name} takes --device now: drop it from NO_MODEL"
            continue
        assert "--device" in opts and "--dtype" in opts, name
        device, dtype = opts["--device"], opts["--dtype"]
        if name == "train":
            assert device.show_default == dtype.show_default == "auto" and dtype.help == TRAIN_DTYPE_HELP
            continue
        assert device.default == dtype.default == "auto", name
        assert device.help.startswith(DEVICE_HELP) and dtype.help.startswith(DTYPE_HELP), name


def test_every_help_shows_the_defaults():
    """An option with a default shows it as [default: ...] (a plain off-flag, absent = off, and an empty list need
    not). A hand-written "[default: x]" in a help text is eaten by rich's markup: show_default says it instead."""
    from typer._click import Context

    for name, command in leaf_commands():
        ctx = Context(command, info_name=name)
        for p in options(command):
            assert "[default:" not in (p.help or ""), (name, p.opts)
            off_flag = p.is_flag and not p.secondary_opts and not p.default
            if p.default not in (None, [], ()) and not off_flag:
                assert "[default: " in p.get_help_record(ctx)[1], (name, p.opts)


def test_train_shows_its_config_defaults(cli):
    """train's flags default to None, so each shows its --config default (show_default): --objective bt's, then
    each other objective's that differs; DPO's and PRM's changes are written out in train.flag_defaults (their
    classes import torch), so they are checked against the classes here."""
    from rewardlab.train import flag_defaults
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.dpo import DPOConfig
    from rewardlab.train.prm import PRMConfig

    def defaults(cls):
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    bt = defaults(TrainConfig)
    for objective, cls in (("dpo", DPOConfig), ("prm", PRMConfig)):
        changed = {k: v for k, v in defaults(cls).items() if v is not None and (k not in bt or bt[k] != v)}
        assert changed == flag_defaults.OTHER_DEFAULTS[objective], objective
    keys = {"eval_data": "eval", "dropout": "disable_dropout", "dtype": "mixed_precision"}  # flag → config key
    per = flag_defaults.objective_defaults()
    train = dict(leaf_commands())["train"]
    for p in options(train):
        key = keys.get(p.name, p.name)
        has_default = any(per[o].get(key) is not None for o in per) or key == "lr"
        if p.default is None and has_default and key != "output":  # --output is required on the command line
            assert isinstance(p.show_default, str), p.opts
    _, out, _ = cli("train", "--help")
    flat = " ".join(out.replace("│", " ").split())
    for shown in ("[default: (bt)]", "[default: (1; armo: 50)]", "[default: (16; dpo: 8)]", "[default: (tiny)]",
                  "[default: (512; prm: 1024)]", "[default: (dpo: 0.1)]", "[default: (no-dropout)]",
                  "[default: (drop-ties)]", "[default: (no-skip-invalid)]", "[default: (auto)]"):
        assert shown in flat, shown


def test_train_dtype_is_its_mixed_precision(cli):
    code, out, _ = cli("train", "--print-config", "--dtype", "fp32")
    assert code == 0 and "mixed_precision: 'no'" in out
    code, out, _ = cli("train", "--print-config", "--dtype", "bf16", "--mixed-precision", "bf16")
    assert code == 0 and "mixed_precision: bf16" in out
    code, _, err = cli("train", "--print-config", "--dtype", "bf16", "--mixed-precision", "fp16")
    assert code == 2 and "disagree" in err
    code, _, err = cli("train", "--print-config", "--dtype", "fp8")
    assert code == 2 and "--dtype 'fp8'" in err
    code, _, err = cli("train", "--print-config", "--objective", "armo", "--dtype", "bf16")
    assert code == 2 and err.startswith("--dtype: does not apply to --objective armo")
