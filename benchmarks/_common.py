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


def hh_prompt(rng: random.Random) -> str:
    """A multi-turn prompt shaped like hh-rlhf's: 1–3 human turns with assistant replies between them, about 90 words
    in all (median; log-normal, long tail), the last turn the human's."""
    words = min(600, int(rng.lognormvariate(4.4, 0.6)))
    turns = rng.randint(1, 3)
    cut = sorted(rng.sample(range(1, max(words, 2 * turns)), 2 * turns - 2)) if turns > 1 else []
    bounds = [0, *cut, max(words, 2 * turns)]
    parts = [("Human: " if k % 2 == 0 else "Assistant: ") + text(rng, max(1, bounds[k + 1] - bounds[k]))
             for k in range(len(bounds) - 1)]
    return "\n\n".join(parts) + "\n\nAssistant:"


def make_hh_pairs(n: int, seed: int = 0):
    """``n`` pairs with hh-rlhf's length shape: long multi-turn prompts (median ~90 words), short responses
    (chosen median ~27 words, rejected ~37), as measured on hh-rlhf harmless with the SmolLM2 tokenizer (93 / 27 / 37
    tokens)."""
    from rewardlab.data.records import PreferencePair

    rng = random.Random(seed)
    return [PreferencePair(hh_prompt(rng), " " + text(rng, max(1, int(rng.lognormvariate(3.3, 0.7)))),
                           " " + text(rng, max(1, int(rng.lognormvariate(3.65, 0.7))))) for _ in range(n)]


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
