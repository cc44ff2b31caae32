import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.errors import UserError
from rewardlab.rewards.implicit import ImplicitDPOReward
from rewardlab.rewards.registry import load_reward
from rewardlab.train.dpo import DPOConfig, train_dpo
from rewardlab.train.losses import dpo_loss


def test_dpo_loss_by_hand():
    c, r = torch.tensor([-1.0], requires_grad=True), torch.tensor([-3.0])
    ref_c, ref_r = torch.tensor([-2.0], requires_grad=True), torch.tensor([-2.0])
    loss = dpo_loss(c, r, ref_c, ref_r, beta=0.5)  # margin 0.5·((−1+2) − (−3+2)) = 1
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    smoothed = dpo_loss(c, r, ref_c, ref_r, beta=0.5, label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(0.9 * math.log1p(math.exp(-1)) + 0.1 * math.log1p(math.exp(1)), abs=1e-6)
    loss.sum().backward()
    assert c.grad.item() == pytest.approx(-0.5 * (1 - 1 / (1 + math.exp(-1))), abs=1e-6)  # −β·σ(−1)
    assert ref_c.grad is None  # the reference is a constant


def pairs_from(rows):
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in rows]


def test_train_dpo_learns_and_saves_an_implicit_reward(pair_rows, tmp_path):
    pairs = pairs_from(pair_rows)
    cfg = DPOConfig(output=str(tmp_path / "dpo"), epochs=4, batch_size=8, lr=3e-3, beta=0.5, max_length=64,
                    tiny_vocab=256, log_every=1)
    summary = train_dpo(pairs[:48], cfg, eval_pairs=pairs[48:], progress=False)
    assert summary["metrics"]["eval_accuracy"] >= 0.9  # chosen starts with "good": a learnable signal
    steps = [json.loads(x) for x in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    losses = [s["loss"] for s in steps if "loss" in s]
    assert len(losses) == 24 and sum(losses[-4:]) < sum(losses[:4])
    reward = load_reward(str(tmp_path / "dpo"))  # the bare directory knows its reference and β
    assert isinstance(reward, ImplicitDPOReward) and reward.beta == 0.5
    held = pairs[48:]
    rc = reward.score([p.prompt for p in held], [p.chosen for p in held])
    rr = reward.score([p.prompt for p in held], [p.rejected for p in held])
    assert (rc > rr).float().mean().item() == pytest.approx(summary["metrics"]["eval_accuracy"])


def test_cli_objective_dpo(pair_rows, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--objective", "dpo", "--data", str(data), "--output", str(out),
                                   "--max-steps", "2", "--batch-size", "4", "--beta", "0.2"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert (out / "model.safetensors").exists() and (out / "reference" / "model.safetensors").exists()
    assert json.loads((out / "rewardlab_dpo.json").read_text())["beta"] == 0.2
    run = json.loads((out / "run.json").read_text())
    assert run["metrics"]["steps"] == 2 and run["truncation"]["items"] == 2 * len(pair_rows)
    bad = CliRunner().invoke(app, ["train", "--data", str(data), "--output", str(out), "--beta", "0.2"])
    assert isinstance(bad.exception, UserError)  # --beta without --objective dpo
    with pytest.raises(UserError, match="bt only"):
        DPOConfig.from_dict({"num_outputs": 2})
