"""Shared synthetic data for the benchmarks: pairs with equal or realistically skewed lengths."""

from __future__ import annotations

import random

WORDS = ("the of and to a in is it you that he was for on are with as his they be at one have this from or had by "
         "hot word but what some we can out other were all there when up use your how said an each she which do "
         "their time if will way about many then them write would like so these her long make thing see him "
         "two").split()


def text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def make_pairs(n: int, skewed: bool, seed: int = 0):
    """``n`` preference pairs. Skewed: response lengths log-normal (median ~24 words, long tail to 300);
    equal: every prompt 16 words and every response 48 words."""
    from rewardlab.data.records import PreferencePair

    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        if skewed:
            lp = min(200, int(rng.lognormvariate(2.5, 0.8)) + 1)
            lc, lr = (min(300, int(rng.lognormvariate(3.2, 0.9)) + 1) for _ in range(2))
        else:
            lp, lc, lr = 16, 48, 48
        pairs.append(PreferencePair(text(rng, lp), "good " + text(rng, lc), "bad " + text(rng, lr)))
    return pairs


def tokenizer_for(pairs):
    from rewardlab.models.tiny import train_tiny_tokenizer

    return train_tiny_tokenizer([p.prompt + " " + p.chosen for p in pairs[:500]], vocab_size=512)


def interleaved_medians(methods: dict, rounds: int) -> dict[str, float]:
    """Run each ``name -> f()`` once per round, contenders interleaved (machine noise hits all alike); median
    seconds per name."""
    import statistics
    import time

    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(rounds):
        for k, f in methods.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}
