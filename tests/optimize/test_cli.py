"""`rewardlab optimize ...` end to end on the tiny policy (in-process, a few steps each)."""

import json

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app


def invoke(args):
    result = CliRunner().invoke(app, ["optimize", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_bon_command(setup):
    tmp, common = setup
    res = invoke(["bon", *common[:-2], "-o", str(tmp / "bon"), "--n", "8", "--max-prompts", "6"])  # no --eval-prompts
    summary = json.loads((tmp / "bon" / "summary.json").read_text())
    assert [r["n"] for r in summary["table"]] == [1, 2, 4, 8] and summary["gao_fit"]["form"] == "bon"
    out = " ".join(res.output.split())  # rich wraps long lines
    assert "KL ≤ log n − (n−1)/n: an upper bound" in out and f"{summary['duplicate_rate']:.1%} of the 8" in out
    assert "Gao bon fit: n/a (3 points" in out  # n = 2, 4, 8: too few for two parameters, not "R² 1.000"
    assert (tmp / "bon" / "bon_table.csv").exists() and (tmp / "bon" / "gold_vs_kl.png").exists()


@pytest.mark.parametrize("cmd,extra", [
    ("rloo", ["--steps", "2", "--k", "2", "--eval-every", "1"]),
    ("grpo", ["--steps", "2", "--k", "4", "--loss", "ppo", "--ppo-epochs", "2"]),
    ("raft", ["--iterations", "1", "--k", "4", "--prompts-per-iteration", "8"]),
    ("dpo", ["--iterations", "1", "--k", "4", "--prompts-per-iteration", "8"]),
])
def test_loop_commands(setup, cmd, extra):
    tmp, common = setup
    out = tmp / cmd
    invoke([cmd, *common, "-o", str(out), *extra])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"][0]["step"] == 0 and "gold_mean" in summary["evaluations"][-1]
    assert (out / "policy" / "model.safetensors").exists() and (out / "policy" / "tokenizer.json").exists()
    assert (out / "metrics.jsonl").exists() and (out / "checkpoint" / "optimizer.safetensors").exists()


def test_ensemble_with_shaping_and_resume(setup):
    tmp, common = setup
    out = tmp / "ens"
    args = [*common, "--reward", "python:cli_rewards_mod:vowels", "--aggregate", "uwo", "--normalize", "fixed",
            "--clip", "3", "--par", "1", "-o", str(out), "--k", "2", "--save-every", "1"]
    invoke(["rloo", *args, "--steps", "1"])
    invoke(["rloo", *args, "--steps", "2", "--resume"])
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [0, 1]
    # PAR output is in (0, 1)
    assert all(0 < r["reward_mean"] < 1 for r in rows if r["kind"] == "train")


def test_user_errors(setup):
    tmp, common = setup
    result = CliRunner().invoke(app, ["optimize", "rloo", *common, "-o", str(tmp / "x"), "--aggregate", "max"])
    assert result.exit_code != 0 and "aggregate" in str(result.exception)


def test_prompts_split_of_a_datasetdict(setup, corpus):
    import datasets

    tmp, common = setup
    dd = tmp / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": p} for p in corpus[:16]]),
                          "test": datasets.Dataset.from_list([{"prompt": p} for p in corpus[16:19]])}).save_to_disk(dd)
    args = [str(dd) if a == common[3] else a for a in common]
    invoke(["bon", *args[:-2], "-o", str(tmp / "bon"), "--n", "2", "--split", "test"])
    summary = json.loads((tmp / "bon" / "summary.json").read_text())
    assert summary["n_prompts"] == 3


def test_lora_run_saves_a_plain_policy_usable_as_policy(setup):
    """--lora-r: the summary records it, checkpoint/ holds the adapter alone, policy/ is a plain causal LM that
    transformers loads and that the next run takes as --policy; a tied target is a UserError (one line, exit 2)."""
    from transformers import AutoModelForCausalLM

    from rewardlab.errors import UserError

    tmp, common = setup
    out = tmp / "lora"
    invoke(["grpo", *common, "-o", str(out), "--steps", "2", "--k", "2", "--lora-r", "4", "--lora-alpha", "8",
            "--lora-target", "c_attn,c_fc", "--lr", "1e-2"])
    args = json.loads((out / "summary.json").read_text())["args"]
    assert (args["lora_r"], args["lora_alpha"], args["lora_target"]) == (4, 8, "c_attn,c_fc")
    assert (out / "checkpoint" / "adapter" / "adapter_model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(out / "policy")
    assert not any("lora" in k for k in model.state_dict())
    common_next = [x if x != "tiny" else str(out / "policy") for x in common]
    invoke(["rloo", *common_next, "-o", str(tmp / "next"), "--steps", "1", "--lora-r", "2"])
    assert json.loads((tmp / "next" / "summary.json").read_text())["evaluations"][0]["kl"] == 0.0
    result = CliRunner().invoke(app, ["optimize", "rloo", *common, "-o", str(tmp / "tied"), "--steps", "1",
                                      "--lora-r", "2", "--lora-target", "lm_head"])
    assert isinstance(result.exception, UserError) and "lm_head shares its weight" in str(result.exception)
    assert not (tmp / "tied").exists()


@pytest.mark.parametrize("cmd,module,loop,args_cls,flags,expected", [
    ("bon", "best_of_n", "run_best_of_n", "BoNArgs", ["--n", "5", "--ns", "1", "--ns", "5"],
     {"n_max": 5, "ns": [1, 5]}),
    ("rloo", "rloo", "train_rloo", "RLOOArgs", ["--steps", "3", "--k", "4", "--dense"],
     {"steps": 3, "k": 4, "dense": True, "kl_coef": 0.05}),
    ("grpo", "rloo", "train_grpo", "GRPOArgs", ["--steps", "2", "--loss", "ppo"],
     {"steps": 2, "k": 8, "loss": "ppo", "algo": "grpo"}),
    ("raft", "raft", "train_raft", "RAFTArgs", ["--iterations", "2", "--keep-fraction", "0.5"],
     {"steps": 2, "keep_fraction": 0.5, "eval_every": 1}),
    ("superhf", "superhf", "train_superhf", "SuperHFArgs", ["--iterations", "2", "--kl-coef", "0.1"],
     {"steps": 2, "k": 16, "kl_coef": 0.1, "keep_fraction": 1.0, "eval_every": 1}),
    ("dpo", "dpo", "train_online_dpo", "OnlineDPOArgs", ["--iterations", "1", "--ref", "previous", "--beta", "0.2"],
     {"steps": 1, "ref": "previous", "beta": 0.2, "lr": 5e-7}),
])
def test_each_command_runs_its_loop_with_args_from_its_flags(tmp_path, monkeypatch, cmd, module, loop, args_cls,
                                                             flags, expected):
    """optimize X calls run_optimization with X's loop function itself and its args dataclass filled from the
    flags; the shared flags go to RunOptions (and from there into the args in run_optimization: loop_args)."""
    import importlib

    from rewardlab.optimize import run

    calls = []

    def fake(loop_fn, args, options, *, uwo_default, log):
        calls.append((loop_fn, args, options, uwo_default))
        bon = {"table": [], "duplicate_rate": 0.0, "args": {"n_max": 5}, "prompts_with_duplicates": 0, "n_prompts": 0}
        return {"algorithm": cmd} | (bon if cmd == "bon" else {"evaluations": []})

    monkeypatch.setattr(run, "run_optimization", fake)
    result = CliRunner().invoke(app, ["optimize", cmd, "--policy", "p", "--reward", "r1", "--reward", "r2",
                                      "--prompts", "x.jsonl", "-o", str(tmp_path / "out"), "--seed", "7",
                                      "--temperature", "0.5", *flags])
    assert result.exit_code == 0, (result.output, result.exception)
    (loop_fn, args, options, uwo), = calls
    mod = importlib.import_module(f"rewardlab.optimize.{module}")
    assert loop_fn is getattr(mod, loop) and type(args) is getattr(mod, args_cls)
    assert {k: getattr(args, k) for k in expected} == expected
    assert (options.policy, options.reward, options.seed, options.temperature) == ("p", ["r1", "r2"], 7, 0.5)
    assert uwo == (0.1 if cmd in ("rloo", "grpo") else 0.5)
    filled = run.loop_args(args, options, 12)
    assert (filled.seed, filled.temperature, filled.max_prompt_length, filled.calibration_samples) == (7, 0.5, 12, 2)


SHARED_FLAGS = ["--reward", "r2", "--gold", "g", "--max-prompts", "5", "--split", "test", "--aggregate", "uwo",
                "--uwo-lambda", "0.3", "--normalize", "fixed", "--clip", "2.5", "--par", "3", "--max-new-tokens",
                "7", "--max-prompt-length", "50", "--temperature", "0.7", "--top-p", "0.9", "--seed", "4",
                "--batch-size", "8", "--device", "cpu", "--dtype", "fp32", "--report-to", "tensorboard", "--engine",
                "vllm"]
GROUP_FLAGS = {  # rloo: the policy-gradient and the training-loop groups, every option off its default
    "loss": ("--loss", "ppo", "ppo"), "ppo_epochs": ("--ppo-epochs", "3", 3),
    "minibatch_size": ("--minibatch-size", "4", 4), "prompts_per_step": ("--prompts-per-step", "6", 6),
    "lr": ("--lr", "0.01", 0.01), "eval_every": ("--eval-every", "2", 2), "eval_prompts": ("--eval-prompts", "3", 3),
    "eval_samples": ("--eval-samples", "2", 2), "save_every": ("--save-every", "5", 5),
    "lora_r": ("--lora-r", "4", 4), "lora_alpha": ("--lora-alpha", "8", 8),
    "lora_target": ("--lora-target", "c_attn", "c_attn")}


@pytest.mark.parametrize("cmd", ["bon", "rloo", "grpo", "raft", "superhf", "dpo"])
def test_grouped_options_reach_run_options_and_the_loop_args(tmp_path, monkeypatch, cmd):
    """The options each command takes from a group (optimize/cli.py: grouped) come back as one RunOptions, equal
    field by field to the values typed (written out here), and with no flag given to RunOptions' own defaults (the
    command line's defaults are the library's); rloo's policy-gradient and loop options land in RLOOArgs."""
    from pathlib import Path

    from rewardlab.optimize import run

    calls = []

    def fake(loop_fn, args, options, **kwargs):
        calls.append((args, options))
        return {"algorithm": cmd, "evaluations": []}

    monkeypatch.setattr(run, "run_optimization", fake)
    required = ["--policy", "p", "--reward", "r1", "--prompts", "x.jsonl", "-o", str(tmp_path / "out")]
    for flags in ([], SHARED_FLAGS):
        result = CliRunner().invoke(app, ["optimize", cmd, *required, *flags])
        assert result.exit_code == 0, (result.output, result.exception)
    assert calls[0][1] == run.RunOptions(policy="p", reward=["r1"], prompts=Path("x.jsonl"), output=tmp_path / "out")
    assert calls[1][1] == run.RunOptions(
        policy="p", reward=["r1", "r2"], prompts=Path("x.jsonl"), output=tmp_path / "out", gold="g", max_prompts=5,
        split="test", aggregate="uwo", uwo_lambda=0.3, normalize="fixed", clip=2.5, par=3, max_new_tokens=7,
        max_prompt_length=50, temperature=0.7, top_p=0.9, seed=4, batch_size=8, device="cpu", dtype="fp32",
        report_to="tensorboard", engine="vllm")
    if cmd == "rloo":
        calls.clear()
        flags = [x for flag, text, _ in GROUP_FLAGS.values() for x in (flag, text)]
        assert CliRunner().invoke(app, ["optimize", cmd, *required, *flags, "--resume"]).exit_code == 0
        (args, _), = calls
        assert {k: getattr(args, k) for k in GROUP_FLAGS} == {k: v for k, (_, _, v) in GROUP_FLAGS.items()}
        assert args.resume is True
