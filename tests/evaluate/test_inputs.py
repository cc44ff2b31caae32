"""`rewardlab eval --policy` on awkward inputs: prompts longer than the policy's positions, a generation budget that
alone exceeds them, unusable output paths, bad prompt files, --device/--dtype."""

import json

import pytest

from tests.data.conftest import write_rows
from tests.optimize.inputs_world import BAD_PROMPTS, NEW, POSITIONS, check_unusable_outputs

REWARD = ["python:opt_inputs_rewards:letters"]


def args(long_world, prompts=None) -> list:
    return [*REWARD, "--policy", long_world / "policy", "--prompts", prompts or long_world / "prompts.jsonl", "--gold",
            "python:opt_inputs_rewards:vowels", "-m", "2", "--max-new-tokens", str(NEW)]


def test_long_multi_turn_prompts_are_truncated_and_counted(cli, long_world, tmp_path):
    code, _, stderr = cli("eval", *args(long_world), "-o", tmp_path / "r")
    assert code == 0, stderr
    doc = json.loads((tmp_path / "r" / "metrics.json").read_text())
    meta = doc["meta"]
    assert meta["max_prompt_length"] == POSITIONS - NEW and meta["truncated_prompts"] == 2 and meta["n_prompts"] == 6
    assert meta["dtype"] == "float32" and meta["device"] == "cpu"  # auto on a CPU machine
    teacher = doc["models"][doc["main"]]["teacher"]
    assert teacher["n_prompts"] == 6 and teacher["n_responses"] == 12
    assert teacher["sampling"]["max_prompt_length"] == POSITIONS - NEW
    assert "2 of 6 prompts are longer than 56 tokens" in stderr


@pytest.mark.parametrize("flags,message", [
    (["--max-new-tokens", "64"], "--max-new-tokens 64: the policy has 64 positions"),
    (["--max-prompt-length", "60"], "--max-prompt-length 60: with --max-new-tokens 8 this exceeds"),
])
def test_a_budget_that_cannot_fit_exits_2(cli, long_world, tmp_path, flags, message):
    code, _, stderr = cli("eval", *args(long_world), *flags, "-o", tmp_path / "r")
    assert code == 2 and message in stderr and list(tmp_path.iterdir()) == []


def test_unusable_output_exits_2_before_any_work(cli, long_world, tmp_path, no_work):
    check_unusable_outputs(cli, ["eval", *args(long_world)], tmp_path)


@pytest.mark.parametrize("case", list(BAD_PROMPTS))
def test_bad_prompt_files_exit_2_with_file_and_line(cli, long_world, tmp_path, case):
    rows, line, words = BAD_PROMPTS[case]
    path = write_rows(tmp_path / "prompts.jsonl", rows)
    code, _, stderr = cli("eval", *args(long_world, path), "-o", tmp_path / "r")
    assert code == 2 and stderr.startswith(f"{path}:{line}: ") and words in stderr.splitlines()[0], stderr
    assert not (tmp_path / "r").exists()


def test_dtype_reaches_the_policy_and_the_rewards(cli, long_world, tmp_path, monkeypatch):
    import rewardlab.models.backbone as backbone
    import rewardlab.rewards.registry as registry

    seen: dict[str, list] = {"policy": [], "reward": []}
    load_lm, load_reward = backbone.load_causal_lm, registry.load_reward
    monkeypatch.setattr(backbone, "load_causal_lm",
                        lambda path, device, dtype=None: seen["policy"].append(dtype) or load_lm(path, device, dtype))
    monkeypatch.setattr(registry, "load_reward",
                        lambda spec, **kw: seen["reward"].append(kw) or load_reward(spec, **kw))
    code, _, stderr = cli("eval", *args(long_world), "--device", "cpu", "--dtype", "bf16", "-o", tmp_path / "r")
    assert code == 0, stderr
    import torch

    assert seen["policy"] == [torch.bfloat16]
    assert [kw["dtype"] for kw in seen["reward"]] == ["bf16", "bf16"]  # gold and the reward
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["meta"]["dtype"] == "bfloat16"


def test_ties_rows_with_unusable_ids_exit_2_before_the_reward_loads(cli, tmp_path, no_work):
    """A Ties-subset row needs reward-bench's 'ref:N' / 'tied:N' id (it was a ValueError traceback after scoring)."""
    def row(id_, chosen, subset="Ties"):
        return {"id": id_, "prompt": "q", "chosen": chosen, "rejected": ["x"], "subset": subset}

    path = write_rows(tmp_path / "rb2.jsonl", [row("1", ["a"], "Math"), row("ref:1", ["a"]), row("2", ["a"]),
                                               row(None, ["a"]), row("tied:1", ["a"]), row("tied:3", ["a", "b"])])
    code, _, stderr = cli("eval", "rule:length:10", "--data", path, "-o", tmp_path / "r")
    assert code == 2
    assert stderr.splitlines() == [
        f"{path}:3: field 'id' of a Ties-subset row must be 'ref:N' or 'tied:N' (reward-bench's Ties layout), got '2'",
        f"{path}:4: field 'id' of a Ties-subset row must be 'ref:N' or 'tied:N' (reward-bench's Ties layout), got "
        "missing",
        f"{path}:5: field 'chosen' of Ties prompt 'tied:1' needs at least two correct answers, got 1"]
    assert not (tmp_path / "r").exists()


def test_response_rows_are_named_by_their_schema(cli, tmp_path, no_work):
    """Rated rows are evaluated per attribute (tests/evaluate/test_attributes.py); response rows are refused."""
    plain = write_rows(tmp_path / "resp.jsonl", [{"prompt": "q", "response": "a"}])
    code, _, stderr = cli("eval", "rule:length:10", "--data", plain, "-o", tmp_path / "r")
    assert code == 2 and stderr == (f"{plain}:1: expected preference pairs, k-way rows or rated rows (response + "
                                    "attributes), found response rows\n")


def test_split_picks_the_datasetdict_split(cli, tmp_path, monkeypatch):
    import datasets

    monkeypatch.chdir(tmp_path)
    (tmp_path / "split_rewards.py").write_text("def length(prompt, response):\n    return float(len(response))\n")
    rows = [{"prompt": "q", "chosen": "long answer", "rejected": "short"}] * 3 + \
        [{"prompt": "q", "chosen": "no", "rejected": "longer"}]
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                          "test": datasets.Dataset.from_list(rows[3:])}).save_to_disk(dd)
    code, out, err = cli("eval", "python:split_rewards:length", "--data", dd, "--split", "test", "-o", tmp_path / "r")
    assert code == 0 and f"{dd}: using split 'test'" in err
    doc = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert doc["meta"]["split"] == "test" and doc["models"][doc["main"]]["pairs"]["accuracy"] == 0.0
