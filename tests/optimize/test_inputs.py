"""`rewardlab optimize ...` on awkward inputs: prompts longer than the policy's positions (long multi-turn
conversations), a generation budget that alone exceeds them, unusable output paths, bad prompt files, --dtype."""

import json

import pytest
from safetensors import safe_open

from tests.data.conftest import write_rows
from tests.optimize.inputs_world import BAD_PROMPTS, COMMANDS, NEW, POSITIONS, check_unusable_outputs, common


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_long_multi_turn_prompts_keep_their_end_in_every_command(cli, long_world, tmp_path, cmd):
    out = tmp_path / cmd
    code, stdout, stderr = cli("optimize", cmd, *common(long_world), *COMMANDS[cmd], "-o", out)
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_prompt_length"] == POSITIONS - NEW and summary["truncated_prompts"] == 2
    assert summary["n_prompts"] == 6
    assert "2 of 6 prompts are longer than 56 tokens" in stderr


def test_explicit_max_prompt_length(cli, long_world, tmp_path):
    code, _, stderr = cli("optimize", "bon", *common(long_world), "--n", "2", "--max-prompt-length", "5", "-o",
                          tmp_path)
    assert code == 0, stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    # the plain prompts are 7-12 byte-level tokens, the one-turn conversation 31, the long ones more: all 6 > 5
    assert summary["max_prompt_length"] == 5 and summary["truncated_prompts"] == 6


@pytest.mark.parametrize("flags,message", [
    (["--max-new-tokens", "64"], "--max-new-tokens 64: the policy has 64 positions"),
    (["--max-new-tokens", "100"], "--max-new-tokens 100: the policy has 64 positions"),
    (["--max-prompt-length", "57"], "--max-prompt-length 57: with --max-new-tokens 8 this exceeds the policy's 64 "
                                    "positions; use at most 56"),
])
def test_a_budget_that_cannot_fit_exits_2_and_creates_nothing(cli, long_world, tmp_path, flags, message):
    code, _, stderr = cli("optimize", "rloo", *common(long_world), *flags, "-o", tmp_path / "run")
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_unusable_output_exits_2_before_any_work(cli, long_world, tmp_path, no_work, cmd):
    check_unusable_outputs(cli, ["optimize", cmd, *common(long_world)], tmp_path)


def test_unknown_dpo_reference_exits_2_before_any_work(cli, long_world, tmp_path, no_work):
    code, _, stderr = cli("optimize", "dpo", *common(long_world), "--ref", "last", "-o", tmp_path / "run")
    assert code == 2 and "--ref must be initial or previous, got 'last'" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", list(BAD_PROMPTS))
@pytest.mark.parametrize("cmd", ["bon", "rloo"])
def test_bad_prompt_files_exit_2_with_file_and_line(cli, long_world, tmp_path, case, cmd):
    rows, line, words = BAD_PROMPTS[case]
    path = write_rows(tmp_path / "prompts.jsonl", rows)
    out = tmp_path / "run"
    code, _, stderr = cli("optimize", cmd, *common(long_world, path), "-o", out)
    assert code == 2 and "Traceback" not in stderr
    assert stderr.startswith(f"{path}:{line}: ") and words in stderr.splitlines()[0], stderr
    assert not out.exists()  # the run directory is created only once the inputs are valid


def test_dtype_auto_is_fp32_on_cpu_and_bf16_trains_fp32_master_weights(cli, long_world, tmp_path, monkeypatch):
    import rewardlab.rewards.registry as registry

    seen = []
    real = registry.load_reward
    monkeypatch.setattr(registry, "load_reward", lambda spec, **kw: seen.append(kw) or real(spec, **kw))
    for dtype, name in [("auto", "float32"), ("bf16", "bfloat16")]:
        out = tmp_path / dtype
        code, _, stderr = cli("optimize", "rloo", *common(long_world), *COMMANDS["rloo"], "--device", "cpu", "--dtype",
                              dtype, "-o", out)
        assert code == 0, stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["dtype"] == name
        assert abs(summary["evaluations"][0]["kl"]) < 0.05  # reference (stored in the dtype) ≈ policy at step 0
        with safe_open(out / "policy" / "model.safetensors", "pt") as f:
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float32"}  # fp32 master weights
    assert [kw["dtype"] for kw in seen] == ["auto", "auto", "bf16", "bf16"] and {kw["device"] for kw in seen} == {"cpu"}
    code, _, stderr = cli("optimize", "bon", *common(long_world), "--n", "2", "--device", "cpu", "--dtype", "bf16",
                          "-o", tmp_path / "bon")
    assert code == 0, stderr


def test_bad_device_or_dtype_exits_2(cli, long_world, tmp_path):
    code, _, stderr = cli("optimize", "rloo", *common(long_world), "--dtype", "fp8", "-o", tmp_path / "run")
    assert code == 2 and "--dtype 'fp8'" in stderr
    code, _, stderr = cli("optimize", "rloo", *common(long_world), "--device", "floppy", "-o", tmp_path / "run")
    assert code == 2 and "--device 'floppy'" in stderr
    assert list(tmp_path.iterdir()) == []
