"""Every pair is trained on: partial accumulation steps, even batches across processes, resume to a new total."""

import json
import random

import pytest
import torch

from rewardlab.data.records import PreferencePair
from rewardlab.train.batches import EpochPlan, steps_per_epoch
from rewardlab.train.config import TrainConfig
from rewardlab.train.encode import encode_pairs
from rewardlab.train.engine import accumulate
from rewardlab.train.trainer import PairObjective, train_reward_model

TINY = dict(tiny_layers=1, tiny_embd=32, tiny_vocab=128, max_length=32, log_every=1)


def make_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    rng = random.Random(seed)
    words = "the cat dog sat on a mat big small red blue yes no".split()

    def s() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))

    return [PreferencePair(s(), "good " + s(), "bad " + s()) for _ in range(n)]


def test_last_partial_accumulation_step_is_taken_and_every_pair_counted(tmp_path):
    # 100 pairs, batch 16 -> 7 batches (6 x 16 + 4); grad-accum 4 -> steps of 4 and 3 micro-batches
    cfg = TrainConfig(output=str(tmp_path / "rm"), batch_size=16, grad_accum=4, epochs=2, **TINY)
    metrics = train_reward_model(make_pairs(100), cfg, progress=False)["metrics"]
    assert metrics["steps"] == 2 * 2
    assert metrics["pairs_seen"] == 2 * 100
    run = json.loads((tmp_path / "rm" / "run.json").read_text())
    assert run["metrics"]["pairs_seen"] == 200 and run["pairs"]["train"]["used"] == 100


def test_steps_per_epoch_counts_partial_steps_and_processes():
    assert steps_per_epoch(100, 16, 4, world=1) == 2  # ceil(7 / 4)
    assert steps_per_epoch(100, 16, 1, world=2) == 4  # ceil(7 / 2) rounds
    assert steps_per_epoch(128, 16, 4, world=1) == 2


def test_epoch_plan_repeats_first_batches_to_even_out_processes():
    plan = EpochPlan.build([1] * 100, batch_size=16, seed=0, epoch=0, bucket=False, world=2)
    assert len(plan.rounds) == 4 and plan.repeated == 1  # 7 batches over 2 processes: one repeated
    seen = [i for r in plan.rounds for b in r for i in b]
    assert sorted(set(seen)) == list(range(100))  # every pair in the epoch
    assert plan.pairs(0, 4) == 100 + 16  # the repeated batch is the first, full one (plain cut: 6 x 16 + 4)
    assert plan.micro(1)[-1] == plan.micro(0)[0]


def test_partial_step_gradient_is_the_mean_over_its_micro_batches(tokenizer):
    from accelerate import Accelerator

    from rewardlab.models.tiny import tiny_reward_model

    cfg = TrainConfig(grad_accum=4)
    data = encode_pairs(make_pairs(12), tokenizer, max_length=32)
    group = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]  # 3 micro-batches in a step of up to 4
    accelerator = Accelerator(cpu=True)

    def grads(groups: list[list[list[int]]]) -> list[torch.Tensor]:
        model = tiny_reward_model(tokenizer, seed=0, n_layer=1, n_embd=32)
        model.eval()  # no dropout: the same forward each time
        for g in groups:
            accumulate(model, PairObjective(data, None, cfg, tokenizer.pad_token_id), g, accelerator)
        return [p.grad.clone() for p in model.parameters()]

    together = grads([group])
    # one micro-batch per call: each gradient is its own loss (len(group) == 1); accumulated and divided by 3
    singles = [g / 3 for g in grads([[b] for b in group])]
    for a, b in zip(together, singles):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_resume_with_larger_max_steps_trains_on_to_the_new_total(tmp_path):
    pairs = make_pairs(96)  # 12 steps an epoch at batch 8: max_steps 3 stops part-way through epoch 0
    out = tmp_path / "rm"
    first = train_reward_model(pairs, TrainConfig(output=str(out), batch_size=8, max_steps=3, **TINY),
                               progress=False)
    assert first["metrics"]["steps"] == 3
    w3 = (out / "model.safetensors").read_bytes()
    more = train_reward_model(pairs, TrainConfig(output=str(out), batch_size=8, max_steps=7, **TINY), resume=True,
                              progress=False)
    assert more["metrics"]["steps"] == 7 and more["metrics"]["pairs_seen"] == 7 * 8
    logged = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(x)]
    assert logged == [1, 2, 3, 4, 5, 6, 7]
    assert (out / "model.safetensors").read_bytes() != w3


def test_resume_that_is_already_done_trains_nothing_and_still_reports(tmp_path):
    pairs = make_pairs(32)
    out = tmp_path / "rm"
    cfg = TrainConfig(output=str(out), batch_size=8, max_steps=2, **TINY)
    train_reward_model(pairs, cfg, eval_pairs=pairs, progress=False)
    again = train_reward_model(pairs, cfg, eval_pairs=pairs, resume=True, progress=False)
    assert again["metrics"]["steps"] == 2 and "eval_accuracy" in again["metrics"]


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_pairs_seen_equals_epochs_times_pairs(tmp_path, grad_accum):
    cfg = TrainConfig(output=str(tmp_path / "rm"), batch_size=8, grad_accum=grad_accum, epochs=3, **TINY)
    metrics = train_reward_model(make_pairs(45), cfg, progress=False)["metrics"]
    assert metrics["pairs_seen"] == 3 * 45
    assert metrics["steps"] == 3 * -(-6 // grad_accum)  # 6 batches (5 x 8 + 5) an epoch


def test_resume_logs_every_step_once(tmp_path):
    """A run killed after logging steps past its last checkpoint logs them again on resume: metrics.jsonl must
    not repeat them."""
    import shutil

    cfg = TrainConfig(output=str(tmp_path / "rm"), batch_size=8, epochs=1, max_steps=6, save_every=2,
                      keep_checkpoints=3, **TINY)
    pairs = make_pairs(60)
    train_reward_model(pairs, cfg, progress=False)
    log = tmp_path / "rm" / "metrics.jsonl"
    first = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    last = sorted((tmp_path / "rm" / "checkpoints").glob("step-*[0-9]"))[-1]  # zero-padded: the step-6 checkpoint
    shutil.rmtree(last)  # as if killed after logging steps 5 and 6, before the step-6 checkpoint was saved
    train_reward_model(pairs, cfg, resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == first and len(steps) == len(set(steps))
