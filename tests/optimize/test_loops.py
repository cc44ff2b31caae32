"""Integration tests of the optimize loops on a tiny GPT-2 (CPU, seconds each)."""

import json
import math

import pytest
import torch

from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.optimize.best_of_n import BoNArgs, run_best_of_n
from rewardlab.optimize.dpo import OnlineDPOArgs, best_worst_pairs, train_online_dpo
from rewardlab.optimize.raft import RAFTArgs, select_best, train_raft
from rewardlab.optimize.rloo import GRPOArgs, RLOOArgs, train_grpo, train_rloo
from rewardlab.rewards.base import FunctionReward

# A dense known reward: a quarter point per ASCII lowercase letter (the random tiny LM emits ~1.3 per response).
LETTERS = FunctionReward(lambda p, r: sum(c in "abcdefghijklmnopqrstuvwxyz" for c in r) / 4, name="letters")
SHORT = dict(max_new_tokens=12, eval_prompts=16, eval_samples=4, prompts_per_step=8)


@pytest.fixture
def policy(tokenizer):
    return tiny_causal_lm(tokenizer, seed=0)


def gain(summary):
    ev = summary["evaluations"]
    return ev[-1]["gold_mean"] - ev[0]["gold_mean"]


def test_rloo_increases_a_known_reward_with_bounded_kl(policy, tokenizer, corpus, tmp_path):
    args = RLOOArgs(steps=20, k=4, lr=3e-3, kl_coef=0.05, eval_every=10, **SHORT)
    summary = train_rloo(policy, tokenizer, LETTERS, corpus[:64], args, gold=LETTERS, output_dir=tmp_path,
                         progress=False)
    ev = summary["evaluations"]
    assert [e["step"] for e in ev] == [0, 10, 20]
    assert ev[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # policy == reference at step 0
    assert gain(summary) > 0.5, ev  # measured: 0.32 -> 1.49
    assert 0 < ev[-1]["kl"] < 15, ev  # measured 7.5 nats; max_new_tokens * log(vocab) would be ~67
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "train" for r in rows) == 20 and sum(r["kind"] == "eval" for r in rows) == 3
    assert (tmp_path / "policy" / "model.safetensors").exists() and (tmp_path / "gold_vs_kl.png").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["gao_fit"]["form"] == "rl"


def test_kl_coefficient_limits_kl(tokenizer, corpus):
    kls = []
    for coef in (0.0, 1.0):
        args = RLOOArgs(steps=15, k=4, lr=3e-3, kl_coef=coef, eval_every=0, **SHORT)
        s = train_rloo(tiny_causal_lm(tokenizer, seed=0), tokenizer, LETTERS, corpus[:64], args, progress=False)
        kls.append(s["evaluations"][-1]["kl"])
    assert kls[1] < 0.5 * kls[0], kls


def test_grpo_and_ppo_loss_improve_reward(tokenizer, corpus):
    g = train_grpo(tiny_causal_lm(tokenizer), tokenizer, LETTERS, corpus[:64],
                   GRPOArgs(steps=12, k=4, lr=3e-3, eval_every=0, **SHORT), gold=LETTERS, progress=False)
    assert gain(g) > 0.3, g["evaluations"]  # measured: 0.32 -> 0.83
    p = train_rloo(tiny_causal_lm(tokenizer), tokenizer, LETTERS, corpus[:64],
                   RLOOArgs(steps=12, k=4, lr=3e-3, loss="ppo", ppo_epochs=2, minibatch_size=16, eval_every=0,
                            **SHORT), gold=LETTERS, progress=False)
    assert gain(p) > 0.3, p["evaluations"]  # measured: 0.32 -> 1.03


def test_resume_continues_exactly(tokenizer, corpus, tmp_path):
    def run(steps, out, resume=False, model=None):
        args = RLOOArgs(steps=steps, k=2, lr=3e-3, eval_every=2, save_every=2, resume=resume, **SHORT)
        m = model or tiny_causal_lm(tokenizer, seed=0)
        return m, train_rloo(m, tokenizer, LETTERS, corpus[:32], args, gold=LETTERS, output_dir=out,
                             progress=False)

    full, s_full = run(4, tmp_path / "full")
    run(2, tmp_path / "cut")  # "interrupted" after 2 steps (checkpoint at step 2)
    resumed, s_res = run(4, tmp_path / "cut", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(s_res["evaluations"], s_full["evaluations"], strict=True):
        assert a == pytest.approx(b)
    rows = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [0, 1, 2, 3]


def test_raft_improves_reward(policy, tokenizer, corpus):
    args = RAFTArgs(steps=3, k=8, lr=1e-2, sft_epochs=3, minibatch_size=16, max_new_tokens=12, eval_prompts=16,
                    eval_samples=4, prompts_per_step=32)
    s = train_raft(policy, tokenizer, LETTERS, corpus[:64], args, gold=LETTERS, progress=False)
    assert [e["step"] for e in s["evaluations"]] == [0, 1, 2, 3]
    assert gain(s) > 0.6, s["evaluations"]  # measured: 0.32 -> 1.69


def test_online_dpo_improves_reward(policy, tokenizer, corpus):
    args = OnlineDPOArgs(steps=3, k=8, beta=0.1, lr=1e-2, epochs=3, minibatch_size=16, max_new_tokens=12,
                         eval_prompts=16, eval_samples=4, prompts_per_step=32)
    s = train_online_dpo(policy, tokenizer, LETTERS, corpus[:64], args, gold=LETTERS, progress=False)
    assert gain(s) > 1.0, s["evaluations"]  # measured: 0.32 -> 3.0
    assert s["warnings"] == []


def test_online_dpo_says_when_its_loss_never_moves(policy, tokenizer, corpus):
    args = OnlineDPOArgs(steps=1, k=4, lr=5e-7, epochs=1, minibatch_size=16, max_new_tokens=8, eval_prompts=4,
                         eval_samples=1, prompts_per_step=8)  # the default lr on a tiny policy: nothing moves
    s = train_online_dpo(policy, tokenizer, LETTERS, corpus[:16], args, progress=False)
    assert len(s["warnings"]) == 1 and s["warnings"][0].startswith("the DPO loss stayed at ln 2 = 0.6931")


def test_selection_helpers_by_hand():
    r = torch.tensor([1.0, 3.0, 2.0, 5.0, 5.0, 0.0, 4.0, 4.0, 4.0])
    assert select_best(r, 3) == [1, 3, 6]
    assert select_best(r, 3, keep_fraction=0.5) == [3, 6]  # top 2 of the winners 3, 5, 4
    assert best_worst_pairs(r, 3) == [(1, 0), (3, 5)]  # the all-equal group gives no pair


def test_best_of_n_table_and_fit(policy, tokenizer, corpus, tmp_path):
    proxy = FunctionReward(lambda p, r: r.count("a") + 0.01 * len(r), name="proxy")
    s = run_best_of_n(policy, tokenizer, proxy, corpus[:6], BoNArgs(n_max=16, max_new_tokens=10), gold=LETTERS,
                      output_dir=tmp_path)
    table = s["table"]
    assert [r["n"] for r in table] == [1, 2, 4, 8, 16]
    assert table[0]["kl"] == 0.0 and table[-1]["kl"] == pytest.approx(2.772588722 - 15 / 16)
    assert all(b["proxy"] >= a["proxy"] for a, b in zip(table, table[1:], strict=False))
    assert table[-1]["gold"] > table[0]["gold"]
    assert (tmp_path / "bon_table.csv").read_text().startswith("n,kl,sqrt_kl,proxy,gold,gold_se,duplicate_rate")
    assert "upper bound" in s["kl_note"] and 0.0 <= s["duplicate_rate"] <= 1.0
    assert table[0]["duplicate_rate"] == 0.0 and table[-1]["duplicate_rate"] == pytest.approx(s["duplicate_rate"])
    # n = 1 .. 16 gives 4 distinct d > 0: too few for a 2-parameter fit, which says so instead of printing R² = 1
    assert s["gao_fit"]["form"] == "bon" and s["gao_fit"]["sufficient"] is False and s["gao_fit"]["r2"] is None
    assert (tmp_path / "gold_vs_kl.png").exists()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["duplicate_rate"] == s["duplicate_rate"] and saved["gao_fit"]["n_distinct"] == 4


def _no_plot(*args, **kwargs):
    raise RuntimeError("no display")


@pytest.mark.parametrize("kind", ["bon", "rloo", "grpo", "raft", "dpo"])
def test_results_are_on_disk_before_plotting(policy, tokenizer, corpus, tmp_path, monkeypatch, kind):
    import rewardlab.optimize.best_of_n as bon_mod
    import rewardlab.optimize.session as session
    from rewardlab.evaluate.plots import PlotError

    monkeypatch.setattr(bon_mod if kind == "bon" else session, "plot_overoptimization", _no_plot)
    small = dict(steps=1, max_new_tokens=6, eval_prompts=4, eval_samples=2, prompts_per_step=4, k=2)
    run = {"bon": lambda: run_best_of_n(policy, tokenizer, LETTERS, corpus[:4], BoNArgs(n_max=4, max_new_tokens=6),
                                        gold=LETTERS, output_dir=tmp_path),
           "rloo": lambda: train_rloo(policy, tokenizer, LETTERS, corpus, RLOOArgs(**small), gold=LETTERS,
                                      output_dir=tmp_path, progress=False),
           "grpo": lambda: train_grpo(policy, tokenizer, LETTERS, corpus, GRPOArgs(**small), gold=LETTERS,
                                      output_dir=tmp_path, progress=False),
           "raft": lambda: train_raft(policy, tokenizer, LETTERS, corpus, RAFTArgs(**small), gold=LETTERS,
                                      output_dir=tmp_path, progress=False),
           "dpo": lambda: train_online_dpo(policy, tokenizer, LETTERS, corpus, OnlineDPOArgs(**small), gold=LETTERS,
                                           output_dir=tmp_path, progress=False)}[kind]
    with pytest.raises(PlotError, match=r"gold_vs_kl.png failed \(RuntimeError: no display\); the results are "
                                        r"saved in .*summary.json") as err:
        run()
    assert isinstance(err.value.__cause__, RuntimeError)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["table" if kind == "bon" else "evaluations"] and not (tmp_path / "gold_vs_kl.png").exists()


@pytest.mark.parametrize("ref", ["initial", "previous"])
def test_online_dpo_reference(tokenizer, corpus, ref, tmp_path):
    """One optimizer step per iteration (all pairs in one minibatch, one epoch), so each iteration's logged loss is
    taken before its update: with π_ref = the iteration's start policy every margin is 0 and the loss is log 2;
    with π_ref = π₀ only the first iteration is at log 2, the later ones see the moved policy."""
    args = OnlineDPOArgs(steps=3, k=4, lr=1e-2, epochs=1, minibatch_size=1000, max_new_tokens=8, eval_prompts=4,
                         eval_samples=2, prompts_per_step=16, ref=ref)
    s = train_online_dpo(tiny_causal_lm(tokenizer, seed=0), tokenizer, LETTERS, corpus[:64], args,
                         output_dir=tmp_path, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "train" and r["pairs"]]
    assert len(rows) == 3 and s["args"]["ref"] == ref
    assert rows[0]["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
    for r in rows[1:]:
        if ref == "previous":
            assert r["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6) and r["implicit_acc"] == 0.0
        else:
            assert abs(r["dpo_loss"] - math.log(2)) > 1e-3, rows


def test_online_dpo_refuses_an_unknown_reference(tokenizer, corpus):
    with pytest.raises(ValueError, match="ref must be one of initial, previous"):
        train_online_dpo(tiny_causal_lm(tokenizer), tokenizer, LETTERS, corpus[:8], OnlineDPOArgs(ref="last"),
                         progress=False)


@pytest.mark.parametrize("dtype,torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_session_precision_keeps_fp32_master_weights(tokenizer, corpus, dtype, torch_dtype):
    from rewardlab.models.generation import sequence_logprobs
    from rewardlab.optimize.common import LoopArgs
    from rewardlab.optimize.session import Session

    policy = tiny_causal_lm(tokenizer, seed=0)
    before = [p.detach().clone() for p in policy.parameters()]
    s = Session(policy, tokenizer, LETTERS, corpus[:8], LoopArgs(dtype=dtype, lr=1e-2), progress=False)
    assert s.dtype == torch_dtype and s.scaler.is_enabled() == (dtype == "fp16")
    assert {p.dtype for p in s.ref.parameters()} == {torch_dtype}  # the frozen reference is stored in the dtype
    ids = torch.tensor([tokenizer("the cat")["input_ids"]])
    with s.amp():
        assert policy(ids).logits.dtype == torch_dtype  # forwards run in the dtype...
    for _ in range(30):  # fp16: the gradient scaler skips steps that overflow (halving its scale) until one fits
        with s.amp():
            logps, mask = sequence_logprobs(policy, [[3, 4, 5]], [[6, 7]])
        assert logps.dtype == torch.float32  # ...log-probs are taken in fp32
        norm = s.update(-(logps * mask).sum())
        if math.isfinite(norm):
            break
    assert norm > 0 and all(p.dtype == torch.float32 for p in policy.parameters())  # fp32 master weights, updated
    assert any(not torch.equal(a, p) for a, p in zip(before, policy.parameters(), strict=True))
    assert Session(tiny_causal_lm(tokenizer), tokenizer, LETTERS, corpus[:8], LoopArgs(), progress=False).dtype \
        == torch.float32  # auto on CPU


def test_a_piped_run_prints_plain_progress_lines(policy, tokenizer, corpus, capsys):
    """stderr is not a terminal under pytest: no live bar, but a line at the first and last step (and every 30 s)."""
    args = RLOOArgs(steps=3, k=2, lr=1e-3, eval_every=0, **SHORT)
    train_rloo(policy, tokenizer, LETTERS, corpus[:16], args, progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rloo: step")]
    assert [line.split()[2] for line in lines] == ["1/3", "3/3"] and "loss=" in lines[-1]
