import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rewardlab.data.load import load_pairs
from rewardlab.rewards.model import ModelReward
from rewardlab.train.batches import make_batches
from rewardlab.train.config import TrainConfig
from rewardlab.train.encode import encode_pairs
from rewardlab.train.trainer import train_reward_model

CLI = [sys.executable, "-m", "rewardlab.cli"]


@pytest.fixture
def data_file(tmp_path, pair_rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    return path


def test_training_learns_signal_and_cli_score_roundtrip(tmp_path, data_file):
    out = tmp_path / "rm"
    proc = subprocess.run(CLI + ["train", "--data", str(data_file), "--eval", str(data_file), "--output", str(out),
                                 "--epochs", "3", "--batch-size", "8", "--lr", "3e-3"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["metrics"]["eval_accuracy"] >= 0.9  # chosen always starts with "good": easy to learn
    assert run["truncation"]["items"] == 128
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_accuracy" in x for x in lines) and any("loss" in x for x in lines)
    proc = subprocess.run(CLI + ["score", str(out), str(data_file), "-o", str(tmp_path / "s.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    scored = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    pairs = load_pairs(data_file)
    expected = ModelReward.from_pretrained(out).score([p.prompt for p in pairs], [p.chosen for p in pairs])
    assert [s["id"] for s in scored] == [p.id for p in pairs]  # input order kept
    torch.testing.assert_close(torch.tensor([s["chosen_score"] for s in scored]), expected, atol=1e-5, rtol=0)
    acc = sum(s["chosen_score"] > s["rejected_score"] for s in scored) / len(scored)
    assert acc == pytest.approx(run["metrics"]["eval_accuracy"])


def test_bucketed_batches_cover_every_pair_once_and_pad_less(tokenizer):
    from rewardlab.data.records import PreferencePair

    pairs = [PreferencePair("q", "a " * (1 + (i * 7) % 40), "b " * (1 + (i * 3) % 40)) for i in range(200)]
    data = encode_pairs(pairs, tokenizer, max_length=128)
    lengths = data.lengths()
    for bucket in (True, False):
        batches = make_batches(lengths, 8, seed=1, epoch=0, bucket=bucket)
        assert sorted(i for b in batches for i in b) == list(range(200))

    def padded(batches):
        return sum(len(b) * max(max(len(data.chosen[i]), len(data.rejected[i])) for i in b) for b in batches)
    assert padded(make_batches(lengths, 8, 1, 0, True)) < 0.8 * padded(make_batches(lengths, 8, 1, 0, False))
    assert make_batches(lengths, 8, 1, 0, True) == make_batches(lengths, 8, 1, 0, True)  # deterministic


def test_sigkill_then_resume_gives_identical_weights(tmp_path, data_file):
    args = ["train", "--data", str(data_file), "--epochs", "10", "--batch-size", "4", "--lr", "1e-3",
            "--save-every", "3", "--dropout"]  # dropout on: the resumed run must also restore the RNG state
    ref = subprocess.run(CLI + args + ["--output", str(tmp_path / "ref")], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(CLI + args + ["--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "checkpoints").glob("step-*[0-9]")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    steps = sorted((out / "checkpoints").glob("step-*[0-9]"))
    assert steps and not (out / "model.safetensors").exists(), "the run must be killed mid-training"
    resumed = subprocess.run(CLI + args + ["--output", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout + resumed.stderr
    a, b = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)


def test_lora_trains_head_and_exports_merged(tmp_path, pair_rows):
    from rewardlab.data.records import PreferencePair

    pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in pair_rows]
    cfg = TrainConfig(output=str(tmp_path / "lora"), epochs=2, batch_size=8, lr=3e-3, lora_r=4)
    summary = train_reward_model(pairs, cfg, eval_pairs=pairs, progress=False)
    out = Path(cfg.output)
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (out / "adapter" / "head.safetensors").exists()
    reward = ModelReward.from_pretrained(out)  # merged: loads as a plain checkpoint, no peft needed
    s_c = reward.score([p.prompt for p in pairs], [p.chosen for p in pairs])
    s_r = reward.score([p.prompt for p in pairs], [p.rejected for p in pairs])
    assert (s_c > s_r).float().mean().item() == pytest.approx(summary["metrics"]["eval_accuracy"])


def test_bad_config_exits_2(tmp_path, data_file):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nbogus: 3\n")
    proc = subprocess.run(CLI + ["train", "--data", str(data_file), "--config", str(cfg)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{cfg}: bogus: unknown key (see rewardlab train --print-config for the valid keys)"


def test_distributed_two_processes_on_cpu(tmp_path, pair_rows):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU runs DDP over gloo. 56 pairs make 7 batches of 8: the
    first is repeated so both processes take 4 steps an epoch, and every pair is trained on."""
    data_file = tmp_path / "pairs.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:56]))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rewardlab.cli",
           "train", "--data", str(data_file), "--eval", str(data_file), "--output", str(out), "--epochs", "2",
           "--batch-size", "8", "--lr", "3e-3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "run.json").read_text())["metrics"]
    assert metrics["world_size"] == 2
    assert metrics["steps"] == 2 * 4  # ceil(7 batches / 2 processes) an epoch
    assert metrics["pairs_seen"] == 2 * (56 + 8)  # each epoch: all 56 pairs + the repeated first batch
    assert metrics["eval_accuracy"] >= 0.9


@pytest.mark.parametrize("epochs,max_steps,expected", [(1, 0, 10), (3, 0, 30), (1, 25, 25), (3, 5, 5), (2, 1000, 1000)])
def test_max_steps_overrides_epochs_whatever_their_number(epochs, max_steps, expected):
    assert TrainConfig(epochs=epochs, max_steps=max_steps).total_steps(steps_per_epoch=10) == expected
