"""Verifiable rewards and a CGPO-style mixture of judges (issue 8), used for best-of-n selection.

    python examples/rules_mixture.py [--output runs/rules-example]

Prompts are arithmetic questions with reference answers. Each has candidate responses of several kinds (correct and
well formatted, correct but rambling, wrong, unformatted, ...). The reward is a mixture, written as the YAML a
``mix:`` spec reads: numeric correctness + a small length penalty, under two constraint judges (an "Answer: N"
format check and a "no refusal" regex). The script prints which candidate each reward picks, the judges' firing
counts, and writes the files so the same mixture can be used from the CLI, e.g.::

    rewardlab score mix:runs/rules-example/mixture.yaml runs/rules-example/candidates.jsonl -o scores.jsonl
    rewardlab optimize bon --policy POLICY --reward mix:runs/rules-example/mixture.yaml --prompts ...
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

MIXTURE = """name: math-judged
sum:
  - {{reward: "rule:numeric:{answers}", weight: 1.0}}
  - {{reward: "rule:length:12:0.05", weight: 1.0}}
constraints:
  - {{name: format, reward: "rule:regex:Answer: -?\\\\d+", threshold: 0.5}}
  - {{name: no-refusal, reward: "rule:regex:^(?!.*(cannot|won't)).*$", threshold: 0.5}}
penalty: -1.0
"""


def candidates(a: int, b: int, rng: random.Random) -> dict[str, str]:
    s = a + b
    # the correct, well-formatted answer comes last: a reward that cannot tell it apart picks an earlier one (ties
    # go to the first candidate)
    return {"refusal": f"I cannot do that. Answer: {s}",
            "unformatted": f"it is {s}",
            "correct-rambling": f"Let me think step by step about {a} and {b} " + "and so on " * 8 + f"Answer: {s}",
            "wrong": f"{s + rng.choice([-2, -1, 1, 2])}. Answer: {s + 1}",
            "correct": f"{a} plus {b} is {s}. Answer: {s}"}


def main() -> None:
    from rewardlab.rewards.registry import load_reward

    ap = argparse.ArgumentParser()
    ap.add_argument("--output", default="runs/rules-example")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    qs = [(rng.randint(1, 50), rng.randint(1, 50)) for _ in range(20)]
    prompts = [f"What is {a} + {b}?" for a, b in qs]
    (out / "answers.jsonl").write_text("".join(json.dumps({"prompt": p, "answer": a + b}) + "\n"
                                               for p, (a, b) in zip(prompts, qs)))
    (out / "mixture.yaml").write_text(MIXTURE.format(answers=out / "answers.jsonl"))
    cands = [candidates(a, b, rng) for a, b in qs]
    kinds = list(cands[0])
    with open(out / "candidates.jsonl", "w") as f:
        for p, c in zip(prompts, cands):
            f.write(json.dumps({"prompt": p, "chosen": [c["correct"]],
                                "rejected": [c[k] for k in kinds if k != "correct"]}) + "\n")

    flat_p = [p for p in prompts for _ in kinds]
    flat_r = [c[k] for c in cands for k in kinds]
    picks = {}
    for spec in (f"rule:numeric:{out / 'answers.jsonl'}", "rule:length:12:0.05", f"mix:{out / 'mixture.yaml'}"):
        reward = load_reward(spec)
        s = reward.score(flat_p, flat_r).view(len(prompts), len(kinds))
        best = s.argmax(1).tolist()  # first index on ties
        picks[spec] = {k: sum(kinds[b] == k for b in best) for k in kinds}
        print(f"{spec}\n  best-of-{len(kinds)} picks: {picks[spec]}")
        if hasattr(reward, "stats"):
            print(f"  constraint judges: {reward.stats()}")
            picks["judges"] = reward.stats()
    (out / "results.json").write_text(json.dumps(picks, indent=2) + "\n")


if __name__ == "__main__":
    main()
