"""The instruction-constraint gold and its constructed proxies, by hand."""

import numpy as np
import pytest

from rewardlab.evaluate import metrics as M
from rewardlab.lab import constraints as C

P = "Write one sentence about rain. At most 5 words. Include the word 'blue'."
Q = "Write one sentence about snow. Use only lowercase letters. End your answer with a question mark."


def test_constraint_scores_by_hand():
    assert C.constraint_scores(P, "blue rain falls") == [1.0, 1.0]
    assert C.constraint_scores(P, "the rain is so very blue today") == [5 / 7, 1.0]
    assert C.constraint_scores(P, "Blue, rain.") == [1.0, 1.0]           # case and punctuation around the word
    assert C.constraint_scores(P, "bluegrass rain") == [1.0, 0.0]        # a word, not a substring
    assert C.constraint_scores(Q, "Is it SNOW?") == [1 - 5 / 8, 1.0]     # 5 uppercase of 8 letters
    assert C.constraint_scores(Q, "snow falls.") == [1.0, 0.0]


def test_gold_is_the_mean_and_empty_answers_get_zero():
    assert C.gold(P, "the rain is so very blue today") == pytest.approx((5 / 7 + 1) / 2)
    assert C.gold(P, "") == C.gold(P, "   ") == 0.0
    conv = [{"role": "user", "content": P}]
    assert C.gold(conv, [{"role": "assistant", "content": "blue rain"}]) == 1.0  # conversations too


def test_prompts_are_seeded_with_two_constraints_each():
    a, b = C.make_prompts(20, 0), C.make_prompts(20, 1)
    assert a == C.make_prompts(20, 0) and a != b
    assert all(len(C.constraint_scores(p, "x")) == 2 for p in a)


def test_constructed_proxies_have_the_flaws_they_claim():
    rng = np.random.default_rng(0)
    prompts = C.make_prompts(30, 3)
    words = "the blue rain Snow home light falls softly Quiet river".split()
    items = [(i, p, " ".join(rng.choice(words, rng.integers(1, 15))) + rng.choice(["", "?", "."]))
             for i, p in enumerate(prompts) for _ in range(6)]
    group = [i for i, _, _ in items]
    gold = np.array([C.gold(p, r) for _, p, r in items])
    score = {name: np.array([getattr(C, name)(p, r) for _, p, r in items]) for name in ("flat", "verbose", "noisy")}
    assert M.on_policy_accuracy(score["flat"], gold, group) == 1.0                       # perfectly accurate ...
    assert M.reward_variance(score["flat"], group) < 0.05 * M.reward_variance(gold, group)  # ... and flat
    assert M.on_policy_accuracy(score["verbose"], gold, group) < 0.5                     # misaligned
    noisy_acc = M.on_policy_accuracy(score["noisy"], gold, group)
    assert 0.55 < noisy_acc < 0.95                                                        # right, but noisily
    assert C.noisy(P, "blue rain") == C.noisy(P, "blue rain")                             # deterministic
