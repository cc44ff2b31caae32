"""One name per concept across commands: samples per prompt is --num-samples / -m everywhere (the old names stay as
aliases), --version answers, lab --only names every experiment."""

import pytest

from rewardlab import __version__


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

    import typer.main

    from rewardlab.cli import app

    group = typer.main.get_command(app)
    names = [[n] for n in group.commands if not hasattr(group.commands[n], "commands")]
    names += [[g, n] for g, c in group.commands.items() if hasattr(c, "commands") for n in c.commands]
    for name in names:
        code, out, _ = cli(*name, "--help")
        flat = " ".join(out.replace("│", " ").split())
        assert code == 0 and not re.search(r"rewardlab\.(?!json)[a-z_]+", flat), name  # rewardlab.json is a file
