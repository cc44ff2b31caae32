"""Dense (per-step) PRM rewards in RLOO: advantages and losses by hand, step ends on policy tokens, a short run."""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.data.stepwise import split_steps
from rewardlab.errors import UserError
from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.optimize.losses import reinforce_loss
from rewardlab.optimize.rloo import (
    RLOOArgs,
    dense_advantages,
    dense_loss,
    dense_rollout,
    token_char_ends,
    train_rloo,
)
from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.prm import aggregate_steps


class LetterStepsPRM:
    """A PRM stub: steps are space-separated words, a step's reward is its lowercase letters / 4."""

    num_outputs = 1
    separator = " "
    aggregate = "mean"
    name = "letter-steps"

    def step_scores(self, prompts, responses):
        return [[sum(c.islower() for c in w) / 4 for w in split_steps(r, self.separator)] for r in responses]

    def score(self, prompts, responses):
        return torch.tensor([aggregate_steps(s, self.aggregate) for s in self.step_scores(prompts, responses)])


def test_dense_advantages_by_hand():
    """k = 2. Seq 0: 3 tokens, steps 0.5 @ token 0 and 1.0 @ token 2 -> G = [1.5, 1.0, 1.0], total 1.5.
    Seq 1: 2 tokens (+1 pad), step 0.2 @ token 1 -> G = [0.2, 0.2], total 0.2. Baselines: the other's total."""
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    kl = torch.zeros(2, 3)
    adv, totals = dense_advantages([[0.5, 1.0], [0.2]], [[0, 2], [1]], kl, mask, k=2, kl_coef=0.1)
    torch.testing.assert_close(totals, torch.tensor([1.5, 0.2]))
    torch.testing.assert_close(adv, torch.tensor([[1.3, 0.8, 0.8], [-1.3, -1.3, 0.0]]))
    # per-token KL folded in: β = 0.5, seq 0 KL [0.2, 0, 0.4] -> r = [0.4, 0, 0.8], G = [1.2, 0.8, 0.8]
    kl[0] = torch.tensor([0.2, 0.0, 0.4])
    adv, totals = dense_advantages([[0.5, 1.0], [0.2]], [[0, 2], [1]], kl, mask, k=2, kl_coef=0.5)
    torch.testing.assert_close(totals, torch.tensor([1.2, 0.2]))
    torch.testing.assert_close(adv, torch.tensor([[1.0, 0.6, 0.6], [-1.0, -1.0, 0.0]]))
    # γ = 0.5 (no KL): seq 0 r = [0.5, 0, 1.0] -> G = [0.75, 0.5, 1.0]; seq 1 r = [0, 0.2] -> G = [0.1, 0.2]
    adv, totals = dense_advantages([[0.5, 1.0], [0.2]], [[0, 2], [1]], torch.zeros(2, 3), mask, k=2, kl_coef=0.0,
                                   gamma=0.5)
    torch.testing.assert_close(totals, torch.tensor([0.75, 0.1]))
    torch.testing.assert_close(adv, torch.tensor([[0.65, 0.4, 0.9], [-0.65, -0.55, 0.0]]))


def test_dense_advantages_at_token_zero_equal_outcome_rloo():
    """k = 3, one step each at the last token: A_{i,0} = R_i − mean of the others' R (the outcome-level RLOO)."""
    mask = torch.ones(3, 2, dtype=torch.long)
    adv, _ = dense_advantages([[1.0], [2.0], [6.0]], [[1], [1], [1]], torch.zeros(3, 2), mask, k=3, kl_coef=0.0)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1 - 4.0, 2 - 3.5, 6 - 1.5]))
    with pytest.raises(ValueError, match="groups of k"):
        dense_advantages([[1.0]] * 3, [[0]] * 3, torch.zeros(3, 1), torch.ones(3, 1), k=2, kl_coef=0.0)


def test_dense_loss_by_hand():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([[2.0, 1.0], [-1.0, 0.0]])
    # −(1/2)[(2·−1 + 1·−2) + (−1·−0.5)] = −(1/2)(−4 + 0.5) = 1.75
    loss = dense_loss(logps, mask, adv)
    assert loss.item() == pytest.approx(1.75)
    loss.backward()
    torch.testing.assert_close(logps.grad, torch.tensor([[-1.0, -0.5], [0.5, 0.0]]))
    const = torch.tensor([[0.7, 0.7], [-0.3, -0.3]])  # a constant advantage per row = REINFORCE
    assert dense_loss(logps, mask, const).item() == pytest.approx(
        reinforce_loss(logps, mask, torch.tensor([0.7, -0.3])).item())
    # PPO at ρ = 1 (old = new): −mean over the 3 masked tokens of A = −(2 + 1 − 1)/3
    assert dense_loss(logps, mask, adv, old_logps=logps.detach()).item() == pytest.approx(-2 / 3)
    # ρ = e^0.5 > 1 + ε on a positive advantage is clipped at 1.2
    ppo = dense_loss(logps[:1, :1], mask[:1, :1], adv[:1, :1], old_logps=logps.detach()[:1, :1] - 0.5)
    assert ppo.item() == pytest.approx(-1.2 * 2.0)


def test_step_ends_land_on_the_tokens_holding_each_steps_last_character(tokenizer, corpus):
    from rewardlab.data.stepwise import step_spans
    from rewardlab.rewards.dense import token_ends_for_spans

    text = "the cat sat  on a mat"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    char_ends = token_char_ends(tokenizer, ids)
    assert char_ends[-1] == len(text) and char_ends == sorted(char_ends)
    spans = step_spans(text, " ")
    assert [text[a:b] for a, b in spans] == ["the", "cat", "sat", "on", "a", "mat"]
    ends = token_ends_for_spans(char_ends, [b for _, b in spans])
    for (_, b), t in zip(spans, ends):
        assert char_ends[t] >= b and (t == 0 or char_ends[t - 1] < b)  # token t holds the step's last character
    assert ends[-1] == len(ids) - 1


def test_dense_rollout_scores_steps_once_and_aggregates(tokenizer, corpus):
    policy = tiny_causal_lm(tokenizer, seed=0)
    from rewardlab.optimize.session import Session

    args = RLOOArgs(steps=1, k=2, max_new_tokens=12, eval_prompts=2, eval_samples=2, prompts_per_step=4,
                    dense=True)
    s = Session(policy, tokenizer, LetterStepsPRM(), corpus[:8], args, progress=False)
    ro, r, rewards, ends, unscored = dense_rollout(s, 0, 2)
    assert unscored == 0 and len(rewards) == len(ro) == 8
    for text, ids, rw, e, agg in zip(ro.responses, ro.response_ids, rewards, ends, r.tolist()):
        words = split_steps(text, " ")
        assert rw == pytest.approx([sum(c.islower() for c in w) / 4 for w in words])
        assert agg == pytest.approx(sum(rw) / len(rw))
        char_ends = token_char_ends(tokenizer, ids)
        assert e == sorted(e) and len(e) == len(words)
        pos = 0
        for w, t in zip(words, e):
            pos = text.index(w, pos) + len(w)
            assert char_ends[t] >= pos and (t == 0 or char_ends[t - 1] < pos)  # the token holding the last char


def test_dense_rloo_runs_and_raises_the_step_reward(tokenizer, corpus):
    args = RLOOArgs(steps=12, k=4, lr=3e-3, kl_coef=0.05, eval_every=6, max_new_tokens=12, eval_prompts=16,
                    eval_samples=4, prompts_per_step=8, dense=True)
    gold = FunctionReward(lambda p, r: sum(c.islower() for c in r) / 4, name="letters")
    summary = train_rloo(tiny_causal_lm(tokenizer, seed=0), tokenizer, LetterStepsPRM(), corpus[:64], args,
                         gold=gold, progress=False)
    ev = summary["evaluations"]
    assert ev[-1]["gold_mean"] > ev[0]["gold_mean"] + 0.3, ev
    assert all(math.isfinite(e["gold_mean"]) for e in ev)


def test_dense_needs_a_prm_and_rloo(tokenizer, corpus):
    plain = FunctionReward(lambda p, r: 1.0, name="one")
    with pytest.raises(UserError, match="process reward model"):
        train_rloo(tiny_causal_lm(tokenizer), tokenizer, plain, corpus[:8], RLOOArgs(steps=1, dense=True),
                   progress=False)
    with pytest.raises(UserError, match="RLOO"):
        train_rloo(tiny_causal_lm(tokenizer), tokenizer, LetterStepsPRM(), corpus[:8],
                   RLOOArgs(steps=1, dense=True, algo="grpo", k=4), progress=False)


def test_cli_rloo_dense_with_a_prm_dir_and_refusal_without(tmp_path, corpus, cli):
    """`rewardlab optimize rloo --dense --reward prm:DIR` runs; a non-PRM reward with --dense exits 2."""
    import json

    from typer.testing import CliRunner

    from rewardlab.cli import app
    from tests.models.test_prm import save_token_classifier

    save_token_classifier("gpt2", corpus, tmp_path / "prm", 2)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:8]))
    common = ["optimize", "rloo", "--policy", "tiny", "--prompts", str(prompts), "--max-new-tokens", "6",
              "--eval-prompts", "2", "--steps", "2", "--k", "2", "--prompts-per-step", "2", "--dense"]
    res = CliRunner().invoke(app, [*common, "--reward", f"prm:{tmp_path / 'prm'}:mean", "-o", str(tmp_path / "rl")])
    assert res.exit_code == 0, (res.output, res.exception)
    rows = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert len(train) == 2 and all("dense_unscored_steps" in r and 0 <= r["reward_mean"] <= 1 for r in train)
    code, _, err = cli(*common[:], "--reward", "rule:length:10", "-o", tmp_path / "bad")
    assert code == 2 and "process reward model" in err and "Traceback" not in err
