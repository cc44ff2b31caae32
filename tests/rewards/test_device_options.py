"""`rewardlab judge` and `rewardlab mixture-train` run models, so they take --device and --dtype like every such
command: a judge: spec loads its local model in the dtype asked for (score, eval and optimize pass theirs through
load_reward); a mixture trains on --device with its forwards autocast to --dtype (weights stay fp32)."""

import json

import pytest
import torch

from rewardlab.data.records import PreferencePair
from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.rewards.registry import load_reward
from rewardlab.train.mixture import MixtureConfig, fit_mixture


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("judge") / "lm"
    tiny_causal_lm(tokenizer, seed=3).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("dtype,expected", [(None, torch.float32), ("auto", torch.float32), ("bf16", torch.bfloat16),
                                            ("fp32", torch.float32)])
def test_judge_spec_loads_in_the_dtype_asked(judge_dir, dtype, expected):
    r = load_reward(f"judge:{judge_dir}", device="cpu", dtype=dtype)  # auto on a CPU: fp32
    assert next(r.backend.model.parameters()).dtype == expected


def test_judge_command_takes_device_and_dtype(cli, judge_dir, corpus, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": corpus[i], "chosen": corpus[i + 10], "rejected": corpus[i + 20]})
                             + "\n" for i in range(3)))
    code, out, err = cli("judge", f"judge:{judge_dir}", "--data", pairs, "--device", "cpu", "--dtype", "bf16")
    assert code == 0, err
    assert json.loads(out)["pairs"] == 3
    code, _, err = cli("judge", f"judge:{judge_dir}", "--data", pairs, "--dtype", "fp8")
    assert code == 2 and "--dtype 'fp8'" in err


def _pairs(n: int = 12) -> list[PreferencePair]:
    return [PreferencePair(f"{'alice' if i % 2 else 'bob'}: question {i % 3}", "yes good answer", "no bad")
            for i in range(n)]


def test_mixture_trains_in_the_dtype_asked_with_fp32_weights():
    cfg = MixtureConfig(k=2, epochs=2, batch_size=6, lr=3e-3)
    model, _, bf16 = fit_mixture(_pairs(), "tiny", cfg, device="cpu", dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.float32} and next(model.parameters()).device.type == "cpu"
    _, _, auto = fit_mixture(_pairs(), "tiny", cfg, device="cpu")  # auto on a CPU: fp32
    _, _, fp32 = fit_mixture(_pairs(), "tiny", cfg, device="cpu", dtype="fp32")
    assert auto == fp32 and bf16 != fp32 and bf16 == pytest.approx(fp32, rel=0.05)  # autocast changed the numbers


def test_mixture_train_command_takes_device_and_dtype(cli, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                             for p in _pairs()))
    code, out, err = cli("mixture-train", "--data", pairs, "-o", tmp_path / "mix", "--epochs", "1", "--batch-size", "6",
                         "--device", "cpu", "--dtype", "bf16")
    assert code == 0, err
    assert (tmp_path / "mix" / "router.safetensors").exists()
