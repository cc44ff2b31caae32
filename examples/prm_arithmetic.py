"""Synthetic stepwise data for the README's PRM example: digit-arithmetic chains with one injected mistake.

A problem is a start digit and a list of operations mod 10 (``start 7 ; + 5 , - 3 , + 4``; ``--ops``); a solution
writes one step per operation (``7 + 5 = 2``), each computed from the previous step's result. A corrupted solution
makes one mistake (a wrong result at step j*, uniform over the steps) and carries the wrong value forward, so its
final answer is wrong and every mistake is checkable inside its own step. Files use the ProcessBench schema
(``label`` = index of the first wrong step, −1 if none; steps after it are unlabeled):

- ``train.jsonl``: ``--train`` solutions, half of them corrupted;
- ``test.jsonl``: ``--problems`` problems × ``--n`` candidate solutions each (``final_answer_correct`` set, so
  ``eval-prm`` reports best-of-n accuracy per aggregation), each candidate corrupted with probability ``--p-wrong``.

    python examples/prm_arithmetic.py --out runs/arith --ops + --max-operand 1
    rewardlab train --objective prm --data runs/arith/train.jsonl --base tiny --epochs 20 --output runs/prm-arith
    rewardlab eval-prm runs/prm-arith --data runs/arith/test.jsonl --report runs/prm-arith-eval

Measured (README, "Process reward models"): the tiny from-scratch PRM learns the ``+ 1`` chains (its loss leaves the
base rate after epoch 6 of 20); on ``--ops +- --max-operand 2`` it stayed at the base rate for 20 epochs.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

OPS = {"+": lambda a, b: (a + b) % 10, "-": lambda a, b: (a - b) % 10, "*": lambda a, b: (a * b) % 10}


def problem(rng: random.Random, steps: int, ops: str = "+-", max_operand: int = 9) -> tuple[int, list[tuple[str, int]]]:
    return rng.randrange(10), [(rng.choice(ops), rng.randrange(1, max_operand + 1)) for _ in range(steps)]


def solve(start: int, ops: list[tuple[str, int]], mistake: int | None, rng: random.Random) -> list[str]:
    """Step texts; at step ``mistake`` the result is off by 1..9 (mod 10), later steps continue from it."""
    x, out = start, []
    for j, (op, b) in enumerate(ops):
        y = OPS[op](x, b)
        if j == mistake:
            y = (y + rng.randrange(1, 10)) % 10
        out.append(f"{x} {op} {b} = {y}")
        x = y
    return out


def row(rng: random.Random, start: int, ops: list[tuple[str, int]], wrong: bool) -> dict:
    mistake = rng.randrange(len(ops)) if wrong else None
    prompt = f"start {start} ; " + " , ".join(f"{op} {b}" for op, b in ops)
    return {"problem": prompt, "steps": solve(start, ops, mistake, rng), "label": -1 if mistake is None else mistake,
            "final_answer_correct": mistake is None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--p-wrong", type=float, default=0.5)
    ap.add_argument("--ops", default="+-", help="Operations to draw from (of +, -, *).")
    ap.add_argument("--max-operand", type=int, default=2, help="Operands are 1..this (at most 9).")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    train = [row(rng, *problem(rng, a.steps, a.ops, a.max_operand), wrong=i % 2 == 1) for i in range(a.train)]
    test = []
    for _ in range(a.problems):
        start, ops = problem(rng, a.steps, a.ops, a.max_operand)
        test += [row(rng, start, ops, wrong=rng.random() < a.p_wrong) for _ in range(a.n)]
    for name, rows in (("train", train), ("test", test)):
        (a.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(train)} training solutions and {len(test)} test candidates ({a.problems} problems) to {a.out}")


if __name__ == "__main__":
    main()
