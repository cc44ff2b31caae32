"""A gold reward a pretrained chat policy can move in a few RL steps, checked by rules: instruction constraints.

Each prompt asks for a short text on a topic under two constraints (IFEval-style, Zhou et al. 2023), chosen from:

* ``lowercase`` — "use only lowercase letters": 1 − (uppercase letters / letters);
* ``max_words:N`` — "at most N words": 1 if #words ≤ N, else N / #words;
* ``include:W`` — "include the word W": 1 if W appears as a word (case-insensitive), else 0;
* ``question`` — "end with a question mark": 1 if the text ends with "?", else 0.

The gold is the mean of the two constraint scores, and 0 for an empty response (an empty answer follows no
instruction). Every score is a pure function of (prompt, response): the constraints are parsed back from the
prompt text, so the gold works as a ``python:rewardlab.lab.constraints:gold`` spec anywhere.

Constructed proxies with known flaws (Razin et al. 2025's contrasts; every one a pure function too):

* :func:`flat` — perfectly accurate, low reward variance: a per-prompt offset in [0, 1) plus 0.05 × gold, so the
  within-prompt spread is small against the spread across prompts once rewards are standardized;
* :func:`verbose` — misaligned where it matters: rewards length (words / 20), against every word limit;
* :func:`partial` — checks only the first constraint of the prompt;
* :func:`noisy` — gold plus a deterministic pseudo-random noise of standard deviation 0.3 per (prompt, response).
"""

from __future__ import annotations

import random
import re
import zlib

TOPICS = ["the sea", "a cat", "coffee", "winter", "a city at night", "music", "old trees", "the moon", "fresh bread",
          "rain", "trains", "libraries", "mountains", "a garden", "the wind", "a small boat", "snow", "a market",
          "bicycles", "the desert", "a lighthouse", "thunder", "an old map", "candles"]
WORDS = ["blue", "quiet", "light", "home", "gold", "slow", "warm", "river", "stone", "dream"]
PHRASES = {"lowercase": "Use only lowercase letters.", "question": "End your answer with a question mark."}
_RULE = re.compile(r"At most (\d+) words\.|Include the word '(\w+)'\.|Use only lowercase letters\.|"
                   r"End your answer with a question mark\.")


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` prompts, each a topic and two different constraints (seeded)."""
    rng = random.Random(f"constraints-{seed}")
    out = []
    for _ in range(n):
        kinds = rng.sample(["lowercase", "max_words", "include", "question"], 2)
        parts = []
        for k in kinds:
            if k == "max_words":
                parts.append(f"At most {rng.choice([5, 8, 12])} words.")
            elif k == "include":
                parts.append(f"Include the word '{rng.choice(WORDS)}'.")
            else:
                parts.append(PHRASES[k])
        out.append(f"Write one sentence about {rng.choice(TOPICS)}. " + " ".join(parts))
    return out


def constraint_scores(prompt: str, response: str) -> list[float]:
    """The score of each constraint of ``prompt`` in ``response``, in the prompt's order (see the module)."""
    text = response.strip()
    words = text.split()
    letters = [c for c in text if c.isalpha()]
    out = []
    for m in _RULE.finditer(prompt):
        rule = m.group(0)
        if m.group(1):
            n = int(m.group(1))
            out.append(1.0 if len(words) <= n else n / len(words))
        elif m.group(2):
            out.append(1.0 if m.group(2).lower() in {w.strip(".,!?;:'\"").lower() for w in words} else 0.0)
        elif rule.startswith("Use only"):
            out.append(1.0 - sum(c.isupper() for c in letters) / len(letters) if letters else 0.0)
        else:
            out.append(1.0 if text.endswith("?") else 0.0)
    return out


def _text(x) -> str:
    """A prompt or response as text (conversations: the last message's content)."""
    return x if isinstance(x, str) else x[-1]["content"]


def gold(prompt, response) -> float:
    """Mean constraint score; 0 for an empty response."""
    p, r = _text(prompt), _text(response)
    scores = constraint_scores(p, r)
    return sum(scores) / len(scores) if r.strip() and scores else 0.0


def _unit(key: str) -> float:
    return zlib.crc32(key.encode()) / 2**32


def flat(prompt, response) -> float:
    """Accurate, low RV: offset(prompt) ∈ [0, 1) + 0.05 · gold."""
    return _unit("offset:" + _text(prompt)) + 0.05 * gold(prompt, response)


def verbose(prompt, response) -> float:
    """Misaligned: more words is better."""
    return len(_text(response).split()) / 20.0


def partial(prompt, response) -> float:
    """Only the first constraint (0 for an empty response)."""
    r = _text(response)
    scores = constraint_scores(_text(prompt), r)
    return scores[0] if r.strip() and scores else 0.0


def noisy(prompt, response) -> float:
    """Gold + deterministic noise: a sum of 4 uniforms, centred, scaled to standard deviation 0.3."""
    key = _text(prompt) + "\x00" + _text(response)
    u = sum(_unit(f"{i}:{key}") for i in range(4)) - 2.0  # variance 4/12
    return gold(prompt, response) + 0.3 * u / (4 / 12) ** 0.5
