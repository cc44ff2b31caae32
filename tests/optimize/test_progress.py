"""Progress of the optimize commands (rewardlab.optimize.progress): best-of-n shows it like the loops do — a live bar
on a terminal, and when stderr is not one (here: pytest's capture) a plain line at the first and the last unit and
at most one every PLAIN_EVERY_S seconds between them."""

import re

import pytest

from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.optimize import progress
from rewardlab.optimize.best_of_n import BoNArgs, run_best_of_n
from rewardlab.optimize.progress import RunProgress
from rewardlab.optimize.rloo import RLOOArgs, train_rloo
from rewardlab.rewards.base import FunctionReward

LETTERS = FunctionReward(lambda p, r: sum(c in "abcdefghijklmnopqrstuvwxyz" for c in r) / 4, name="letters")


def lines(err: str, name: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{name}: ")]


def test_plain_lines_first_last_and_throttled(capsys, monkeypatch):
    bar = RunProgress("run", 5, unit="batch")
    for done in range(1, 6):
        bar.update(done, f"phase {done}")
        bar.update(done, "a new description only")  # no second line for the same unit
    bar.close()
    got = lines(capsys.readouterr().err, "run")
    assert [re.sub(r" \(\d+ s\)$", "", x) for x in got] == ["run: batch 1/5 phase 1", "run: batch 5/5 phase 5"]
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    bar = RunProgress("run", 3, start=1)  # resumed after one step
    for done in (2, 3):
        bar.update(done)
    assert [re.sub(r" \(\d+ s\)$", "", x) for x in lines(capsys.readouterr().err, "run")] == \
        ["run: step 2/3", "run: step 3/3"]


def test_disabled_progress_is_silent(capsys):
    bar = RunProgress("run", 3, enabled=False)
    for done in (1, 2, 3):
        bar.update(done, "x")
    bar.close()
    assert capsys.readouterr().err == ""


def test_best_of_n_shows_progress_over_its_batches(tokenizer, corpus, capsys, monkeypatch):
    """6 prompts × 8 samples in batches of 16: 3 generation batches, then the proxy and the gold scoring passes;
    the progress does not change what is sampled."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    args = BoNArgs(n_max=8, max_new_tokens=6, batch_size=16)
    shown = run_best_of_n(tiny_causal_lm(tokenizer, seed=0), tokenizer, LETTERS, corpus[:6], args, gold=LETTERS)
    got = [re.sub(r" \(\d+ s\)$", "", x) for x in lines(capsys.readouterr().err, "best-of-n")]
    assert got == [f"best-of-n: batch {i}/5 sampling 8 per prompt" for i in (1, 2, 3)] + \
        ["best-of-n: batch 4/5 scored (proxy)", "best-of-n: batch 5/5 scored (gold)"]
    quiet = run_best_of_n(tiny_causal_lm(tokenizer, seed=0), tokenizer, LETTERS, corpus[:6], args, gold=LETTERS,
                          progress=False)
    assert capsys.readouterr().err == ""
    assert quiet["table"] == shown["table"]


def test_loops_print_plain_progress(tokenizer, corpus, capsys):
    args = RLOOArgs(steps=3, k=2, max_new_tokens=4, prompts_per_step=2, eval_prompts=2, eval_samples=2,
                    eval_every=0)
    train_rloo(tiny_causal_lm(tokenizer, seed=0), tokenizer, LETTERS, corpus[:8], args)
    got = lines(capsys.readouterr().err, "rloo")
    assert [x.split(" ")[2] for x in got] == ["1/3", "3/3"] and "loss=" in got[0]


@pytest.mark.parametrize("loop", ["rloo", "grpo"])
def test_rl_steps_help_says_what_a_step_costs(cli, loop):
    _, out, _ = cli("optimize", loop, "--help")
    flat = " ".join(out.replace("│", " ").split())
    k = 2 if loop == "rloo" else 8
    # 100 steps × 8 prompts × k, and 11 evaluations (steps 0, 10, ..., 90 and the last) × 32 prompts × 4 samples
    assert f"(8 × {k} = {8 * k} by default)" in flat and f"about {100 * 8 * k + 11 * 128:,} responses" in flat
