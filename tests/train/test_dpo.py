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


def dpo_run(pairs, out, **kw):
    cfg = DPOConfig(output=str(out), max_length=48, tiny_vocab=256, tiny_layers=1, tiny_embd=32, lr=3e-3,
                    log_every=1, **{"batch_size": 8, "max_steps": 3, "bucket": False, **kw})
    summary = train_dpo(pairs, cfg, progress=False)
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    return summary, losses, out


def weights(out):
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def test_dpo_grad_accum_equals_the_larger_batch(pair_rows, tmp_path):
    pairs = pairs_from(pair_rows)[:48]
    big, big_losses, a = dpo_run(pairs, tmp_path / "big", batch_size=8)
    acc, acc_losses, b = dpo_run(pairs, tmp_path / "acc", batch_size=4, grad_accum=2)
    assert acc["metrics"]["steps"] == big["metrics"]["steps"] == 3 and acc["metrics"]["pairs_seen"] == 24
    assert acc_losses == pytest.approx(big_losses, abs=1e-5)  # the same pairs per step (plain, unbucketed cut)
    wa, wb = weights(a), weights(b)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-4)


def test_dpo_last_partial_step_and_every_pair_seen(pair_rows, tmp_path):
    pairs = pairs_from(pair_rows)[:44]  # 6 batches of 8 (5 x 8 + 4); grad-accum 4 -> steps of 4 and 2
    summary, _, _ = dpo_run(pairs, tmp_path / "run", grad_accum=4, max_steps=0, epochs=2)
    assert summary["metrics"]["steps"] == 4 and summary["metrics"]["pairs_seen"] == 88


def test_dpo_bucket_and_mixed_precision_are_applied(pair_rows, tmp_path):
    pairs = pairs_from(pair_rows)[:32]
    _, plain, _ = dpo_run(pairs, tmp_path / "plain")
    _, bucketed, _ = dpo_run(pairs, tmp_path / "bucket", bucket=True)
    _, bf16, _ = dpo_run(pairs, tmp_path / "bf16", mixed_precision="bf16")
    assert bucketed != pytest.approx(plain, abs=1e-6)  # other batches: an ignored option would change nothing
    assert bf16 != pytest.approx(plain, abs=1e-6)  # bf16 autocast rounds the forward
    assert bf16 == pytest.approx(plain, abs=0.05)  # ... but only a little


def test_dpo_refuses_what_it_does_not_do(pair_rows, tmp_path):
    with pytest.raises(UserError, match="bt only"):
        DPOConfig.from_dict({"drop_ties": False})
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="fp16 needs a CUDA device"):
            dpo_run(pairs_from(pair_rows)[:8], tmp_path / "fp16", mixed_precision="fp16")
        assert not (tmp_path / "fp16").exists()


def test_dpo_resume_from_a_mid_epoch_checkpoint_gives_identical_weights(pair_rows, tmp_path):
    """As BT's and PRM's: a run cut after its step-3 checkpoint (mid-epoch: 5 steps an epoch) and resumed trains to
    the same weights, bit for bit, and logs every step once (the rows after the checkpoint are dropped)."""
    import shutil

    pairs = pairs_from(pair_rows)[:40]
    kw = dict(max_steps=0, epochs=2, save_every=3, keep_checkpoints=10, disable_dropout=False)  # dropout: RNG too
    ref, ref_losses, ref_out = dpo_run(pairs, tmp_path / "ref", **kw)
    cut = tmp_path / "cut"
    shutil.copytree(ref_out, cut)
    for f in ("model.safetensors", "rewardlab_dpo.json", "run.json"):
        (cut / f).unlink()
    for ck in (cut / "checkpoints").glob("step-*"):
        if int(ck.name.split("-")[1]) > 3:  # as if killed after logging step 10, its last checkpoint at step 3
            shutil.rmtree(ck)
    cfg = DPOConfig(output=str(cut), max_length=48, tiny_vocab=256, tiny_layers=1, tiny_embd=32, lr=3e-3, log_every=1,
                    batch_size=8, bucket=False, **kw)
    resumed = train_dpo(pairs, cfg, progress=False, resume=True)
    rows = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert [r["loss"] for r in rows] == ref_losses  # steps 4..10 done again, to the same losses
    assert resumed["metrics"]["steps"] == 10 and resumed["metrics"]["pairs_seen"] == ref["metrics"]["pairs_seen"] == 80
    a, b = weights(ref_out), weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)



def test_cli_dpo_resume_continues_to_a_larger_max_steps(pair_rows, tmp_path, cli):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    args = ["train", "--objective", "dpo", "--data", data, "--output", tmp_path / "run", "--batch-size", "8",
            "--max-length", "48"]
    assert cli(*args, "--max-steps", "2")[0] == 0
    code, out, err = cli(*args, "--max-steps", "3", "--resume")
    assert code == 0, err
    assert "resumed from" in out + err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["metrics"]["steps"] == 3
