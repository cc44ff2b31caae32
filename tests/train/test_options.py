"""Training options: gradient checkpointing, the learning-rate default by base, --device."""

import json

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.train.config import PRETRAINED_LR, TINY_LR, TrainConfig
from rewardlab.train.encode import encode_pairs
from rewardlab.train.engine import make_accelerator
from rewardlab.train.trainer import enable_gradient_checkpointing, forward_pair_batch, pair_loss
from tests.train.test_steps import TINY, make_pairs


def loss_and_grads(tokenizer, data, checkpointing: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    from rewardlab.models.tiny import tiny_reward_model

    model = tiny_reward_model(tokenizer, seed=0, n_layer=2, n_embd=32)
    model.train()
    for m in model.modules():  # no dropout noise: both runs must be the same computation
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    if checkpointing:
        enable_gradient_checkpointing(model.backbone, "tiny")
    calls = []
    inner = model.backbone.h[0].attn  # inside the checkpointed block (hooks on the block itself run once)
    inner.register_forward_hook(lambda *_: calls.append(1))
    idx = list(range(8))
    r_c, r_r = forward_pair_batch(model, data, idx, tokenizer.pad_token_id, "cpu")
    loss, _ = pair_loss(r_c, r_r, data, idx, TrainConfig(), "cpu")
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()], len(calls)


def test_gradient_checkpointing_recomputes_and_leaves_loss_and_grads_unchanged(tokenizer):
    data = encode_pairs(make_pairs(8), tokenizer, max_length=32)
    loss, grads, calls = loss_and_grads(tokenizer, data, checkpointing=False)
    loss_gc, grads_gc, calls_gc = loss_and_grads(tokenizer, data, checkpointing=True)
    assert calls == 1 and calls_gc == 2  # the block ran again in backward: checkpointing is really on
    torch.testing.assert_close(loss_gc, loss, atol=1e-6, rtol=0)
    for a, b in zip(grads_gc, grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_flag_trains(tmp_path):
    from typer.testing import CliRunner

    from rewardlab.cli import app

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                            for p in make_pairs(16)))
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--output", str(tmp_path / "rm"), "--max-steps",
                                   "1", "--batch-size", "8", "--gradient-checkpointing", "--device", "cpu"])
    assert res.exit_code == 0, (res.output, res.exception)
    config = json.loads((tmp_path / "rm" / "run.json").read_text())["config"]
    assert config["gradient_checkpointing"] is True and config["device"] == "cpu"


def test_lr_default_depends_on_the_base_and_is_recorded(tmp_path):
    from rewardlab.train.trainer import train_reward_model

    assert TrainConfig().resolved_lr() == TINY_LR == 1e-3
    assert TrainConfig(base="some/hf-model-dir").resolved_lr() == PRETRAINED_LR == 2e-5
    assert TrainConfig(base="some/hf-model-dir", lr=5e-5).resolved_lr() == 5e-5
    out = tmp_path / "rm"
    train_reward_model(make_pairs(16), TrainConfig(output=str(out), batch_size=8, max_steps=1, **TINY),
                       progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["lr"] == 1e-3 and run["lr_default"] is True
    # a rewardlab checkpoint trained from 'tiny' keeps the tiny default; one from a pretrained base does not
    assert TrainConfig(base=str(out)).resolved_lr() == TINY_LR
    manifest = json.loads((out / "rewardlab.json").read_text())
    (out / "rewardlab.json").write_text(json.dumps({**manifest, "base": "/models/qwen"}))
    assert TrainConfig(base=str(out)).resolved_lr() == PRETRAINED_LR
    with pytest.raises(UserError, match="config: lr: must be > 0"):
        TrainConfig.from_dict({"lr": 0})


def test_device_option():
    assert make_accelerator(TrainConfig(device="cpu")).device.type == "cpu"
    with pytest.raises(UserError, match="config: device: must be auto, cpu or cuda"):
        TrainConfig.from_dict({"device": "tpu"})
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            make_accelerator(TrainConfig(device="cuda"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_precision_this_machine_cannot_do_is_refused_before_any_output(tmp_path):
    from rewardlab.train.trainer import train_reward_model

    for kw in ({"mixed_precision": "fp16"}, {"device": "cuda"}):
        with pytest.raises(UserError, match="CUDA device"):
            train_reward_model(make_pairs(16), TrainConfig(output=str(tmp_path / "rm"), **kw), progress=False)
        assert not (tmp_path / "rm").exists()


def test_eval_split_of_the_training_datasetdict(tmp_path, cli):
    """--data DIR --eval DIR (one saved DatasetDict) evaluated on the training split without a word; --eval-split
    picks the held-out one."""
    import datasets

    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(7)]
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:5]),
                          "test": datasets.Dataset.from_list(rows[5:])}).save_to_disk(dd)
    common = ["train", "--data", dd, "--eval", dd, "--base", "tiny", "--max-steps", "1", "--max-length", "32"]
    code, _, err = cli(*common, "--output", tmp_path / "a", "--eval-split", "test")
    assert code == 0 and f"{dd}: using split 'test'" in err and "warning" not in err
    assert json.loads((tmp_path / "a" / "run.json").read_text())["eval_truncation"]["items"] == 4  # 2 test pairs
    code, _, err = cli(*common, "--output", tmp_path / "b")
    assert code == 0 and err.splitlines()[0] == (f"warning: --eval {dd} is --data with the same split: the eval "
                                                 "accuracy is measured on training rows (choose a held-out split "
                                                 "with --eval-split)")
    assert json.loads((tmp_path / "b" / "run.json").read_text())["eval_truncation"]["items"] == 10
