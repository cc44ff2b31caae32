"""``--engine``: the option every policy-sampling command shares, and ``--engine vllm`` without vLLM (exit 2 with the
install line, nothing created). The vLLM path itself is tested in test_vllm_sampler.py (``make test-vllm``)."""

import json

import pytest

from rewardlab.errors import UserError
from rewardlab.models import engines
from rewardlab.models.engines import INSTALL_HINT, check_engine, policy_sampler

# every command that samples a policy of the user's choosing
SAMPLING_COMMANDS = ["eval", "teachers", "calibrate", "optimize bon", "optimize rloo", "optimize grpo",
                     "optimize raft", "optimize superhf", "optimize dpo"]


@pytest.fixture
def no_vllm(monkeypatch):
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)  # also where the vLLM venv runs this file


def test_check_engine(no_vllm):
    check_engine("transformers")
    with pytest.raises(UserError, match="--engine 'hf': choose transformers or vllm"):
        check_engine("hf")
    with pytest.raises(UserError) as e:
        check_engine("vllm")
    assert INSTALL_HINT in e.value.problems[0] and e.value.problems[0].startswith("--engine vllm: vLLM is not")


def test_transformers_engine_is_generation_sample():
    from rewardlab.models.generation import sample

    with policy_sampler("transformers", None, None) as draw:
        assert draw is sample


def test_every_sampling_command_takes_engine():
    """One name, one default (transformers), one help (models.engines.engine_option) on every command that samples
    a policy; no other command has a --engine that defaults to transformers (score/serve's --engine is local|ray:
    where the reward runs, not a policy)."""
    from tests.test_cli_names import leaf_commands, options

    taking = {}
    for name, command in leaf_commands():
        opts = {o: p for p in options(command) for o in p.opts}
        if "--engine" in opts and opts["--engine"].default == "transformers":
            taking[name] = opts["--engine"]
    assert set(taking) == set(SAMPLING_COMMANDS)
    assert all(p.help.startswith(engines.ENGINE_HELP) for p in taking.values())


def _prompts(tmp_path, corpus):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:4]))
    return path


@pytest.mark.parametrize("command", ["optimize bon", "optimize raft", "optimize rloo"])
def test_optimize_vllm_missing_exits_2_creating_nothing(cli, tmp_path, corpus, no_vllm, command):
    out = tmp_path / "run"
    code, stdout, err = cli(*command.split(), "--policy", "tiny", "--prompts", _prompts(tmp_path, corpus),
                            "--reward", "rule:length:10", "--output", out, "--engine", "vllm")
    assert code == 2 and INSTALL_HINT in err and stdout == ""
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["prompts.jsonl"]


@pytest.mark.parametrize("command", ["eval", "teachers", "calibrate"])
def test_eval_teachers_calibrate_vllm_missing_exit_2_creating_nothing(cli, tmp_path, corpus, no_vllm, command):
    prompts, out = _prompts(tmp_path, corpus), tmp_path / "out"
    args = {"eval": ["eval", "rule:length:10", "--output", out, "--policy", "tiny", "--prompts", prompts],
            "teachers": ["teachers", "--policy", "tiny", "--reward", "rule:length:10", "--prompts", prompts,
                         "--output", out],
            "calibrate": ["calibrate", out, "--policy", "tiny", "--prompts", prompts]}[command]
    code, stdout, err = cli(*args, "--engine", "vllm")
    assert code == 2 and INSTALL_HINT in err and stdout == ""
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["prompts.jsonl"]


def test_vllm_reward_spec_missing_vllm_exits_2_creating_nothing(cli, tmp_path, tokenizer, pair_rows, no_vllm):
    """``vllm:DIR`` (rewards/vllm.py) without vLLM: the spec and the install line, before anything is written."""
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model

    save_reward_model(tiny_reward_model(tokenizer), tokenizer, tmp_path / "rm")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:4]))
    code, stdout, err = cli("score", f"vllm:{tmp_path / 'rm'}", data, "-o", tmp_path / "out.jsonl")
    assert code == 2 and INSTALL_HINT in err and f"vllm:{tmp_path / 'rm'}: vLLM is not installed" in err
    assert stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "rm"]
