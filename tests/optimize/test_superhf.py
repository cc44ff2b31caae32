"""SuperHF (optimize/superhf.py): its loss against a hand computation on small logits, KL against torch's kl_div,
β = 0 against RAFT, and `rewardlab optimize superhf` end to end on the tiny policy with gold tracking."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.optimize.losses import sft_loss, superhf_loss, token_kl
from rewardlab.optimize.raft import RAFTArgs, train_raft
from rewardlab.optimize.superhf import SuperHFArgs, train_superhf
from rewardlab.rewards.base import FunctionReward

LETTERS = FunctionReward(lambda p, r: sum(c in "abcdefghijklmnopqrstuvwxyz" for c in r) / 4, name="letters")


def test_superhf_loss_by_hand():
    # one completion of 3 positions (the last is padding), vocabulary of 2
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    ref = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0], [0.0, 0.0]]])
    targets = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # π at t=0: (1/2, 1/2), target 1 -> −log 1/2; t=1: (3/4, 1/4), target 0 -> −log 3/4
    ce = (math.log(2) - math.log(0.75)) / 2
    # π_ref at t=0: (3/4, 1/4); t=1: (1/2, 1/2)
    kl0 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    loss, ce_out, kl_out = superhf_loss(logits, ref, targets, mask, kl_coef=0.35)
    assert ce_out.item() == pytest.approx(ce)
    assert kl_out.item() == pytest.approx((kl0 + kl1) / 2)
    assert loss.item() == pytest.approx(ce + 0.35 * (kl0 + kl1) / 2)
    logps = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    assert superhf_loss(logits, ref, targets, mask, 0.0)[0].item() == pytest.approx(sft_loss(logps, mask).item())


def test_token_kl_matches_torch_kl_div():
    g = torch.Generator().manual_seed(0)
    logits, ref = torch.randn(3, 4, 11, generator=g), torch.randn(3, 4, 11, generator=g)
    expected = torch.nn.functional.kl_div(ref.log_softmax(-1), logits.log_softmax(-1), log_target=True,
                                          reduction="none").sum(-1)  # Σ p (log p − log q) = KL(p ‖ q)
    assert torch.allclose(token_kl(logits, ref), expected, atol=1e-6)
    assert torch.all(token_kl(logits, ref) >= 0) and token_kl(logits, logits).abs().max() < 1e-6


def test_kl_gradient_flows_to_the_policy_only():
    logits = torch.randn(1, 2, 5, requires_grad=True)
    ref = torch.randn(1, 2, 5, requires_grad=True)
    loss, _, _ = superhf_loss(logits, ref, torch.tensor([[0, 1]]), torch.ones(1, 2), kl_coef=1.0)
    loss.backward()
    assert logits.grad is not None and ref.grad is None


def test_beta_zero_is_raft(tokenizer, corpus, tmp_path):
    small = dict(steps=1, k=4, lr=1e-2, minibatch_size=8, max_new_tokens=8, eval_prompts=4, eval_samples=2,
                 prompts_per_step=8)
    raft, shf = tiny_causal_lm(tokenizer, seed=0), tiny_causal_lm(tokenizer, seed=0)
    a = train_raft(raft, tokenizer, LETTERS, corpus[:16], RAFTArgs(**small), output_dir=tmp_path / "raft",
                   progress=False)
    b = train_superhf(shf, tokenizer, LETTERS, corpus[:16], SuperHFArgs(**small, kl_coef=0.0),
                      output_dir=tmp_path / "shf", progress=False)
    train = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
              if '"train"' in line][0] for d in ("raft", "shf")]
    assert train[1]["ce"] == pytest.approx(train[0]["sft_loss"], rel=1e-6) and train[1]["kl"] < 1e-6
    assert train[1]["kept_reward_mean"] == train[0]["kept_reward_mean"]
    # same loss, same samples: the same Adam step (up to float noise that Adam's normalization scales to ~1% of lr
    # on parameters whose gradient is ~0)
    for p, q in zip(raft.parameters(), shf.parameters(), strict=True):
        assert torch.allclose(p, q, atol=0.05 * small["lr"])
    assert a["evaluations"] == b["evaluations"]


def test_kl_prior_keeps_the_policy_nearer_its_reference(tokenizer, corpus):
    small = dict(steps=2, k=4, lr=3e-2, sft_epochs=3, minibatch_size=8, max_new_tokens=8, eval_prompts=8,
                 eval_samples=4, prompts_per_step=16)
    kl = {}
    for beta in (0.0, 5.0):
        s = train_superhf(tiny_causal_lm(tokenizer, seed=0), tokenizer, LETTERS, corpus[:32],
                          SuperHFArgs(**small, kl_coef=beta), progress=False)
        kl[beta] = s["evaluations"][-1]["kl"]
    assert kl[5.0] < kl[0.0], kl


def test_cli_smoke_run_tracks_gold(setup):
    tmp, common = setup
    out = tmp / "superhf"
    res = CliRunner().invoke(app, ["optimize", "superhf", *common, "-o", str(out), "--iterations", "2", "--k", "3",
                                   "--prompts-per-iteration", "6", "--kl-coef", "0.5"])
    assert res.exit_code == 0, (res.output, res.exception)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == "superhf" and summary["args"]["kl_coef"] == 0.5
    assert [e["step"] for e in summary["evaluations"]] == [0, 1, 2]
    assert all("gold_mean" in e and "sqrt_kl" in e for e in summary["evaluations"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train] == [0, 1] and all(r["kept"] == 6 for r in train)
    for r in train:
        assert r["loss"] == pytest.approx(r["ce"] + 0.5 * r["kl"], rel=1e-5) and r["kl"] >= 0
    assert (out / "policy" / "model.safetensors").exists() and (out / "gold_vs_kl.png").exists()
    bad = CliRunner().invoke(app, ["optimize", "superhf", *common, "-o", str(tmp / "neg"), "--kl-coef", "-1"])
    assert bad.exit_code == 2 and not (tmp / "neg").exists()
