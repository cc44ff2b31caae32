"""`rewardlab judge` runs a model, so it takes --device and --dtype like every such command, and a judge: spec loads
its local model in the dtype asked for (score, eval and optimize pass theirs through load_reward)."""

import json

import pytest
import torch

from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.rewards.registry import load_reward


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
