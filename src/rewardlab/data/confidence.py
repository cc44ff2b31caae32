"""Verbalized confidence in responses, and PPO-M's calibrated reward-modeling pairs (Leng et al. 2024, "Taming
Overconfidence in LLMs: Reward Calibration in RLHF", arXiv 2410.09724).

A response states its confidence as ``Confidence: N`` with N on the paper's 0–10 scale (``7``, ``7.5``, ``7/10``;
case-insensitive). :func:`read_confidence` returns the *last* such statement's N clipped to [0, 10] — the paper's
prompt asks the model to end its answer with it — or None when there is none; :func:`strip_confidence` removes every
statement (with the punctuation right after it), so a reward model can score the answer alone (PPO-C,
:mod:`rewardlab.rewards.calibrated`).

PPO-M trains the reward model on the confidence-augmented pairs that :func:`confidence_pairs` writes: every pair
(x, y_c, y_r) becomes two,

    (x', y_c + "Confidence: h",  y_c + "Confidence: l")     the right answer: high confidence preferred
    (x', y_r + "Confidence: l'", y_r + "Confidence: h'")    the wrong answer: low confidence preferred

with h, h' drawn uniformly from {7..10} and l, l' from {0..3} (independently, seeded) and x' the prompt with an
instruction asking for the statement. The paper's calibrated RM loss

    L = −log σ(r(x', y_c^h) − r(x', y_c^l)) − log σ(r(x', y_r^l) − r(x', y_r^h))

is then the Bradley–Terry loss of ``rewardlab train`` on these rows (two rows per original pair; the mean over rows
is half the sum above). The paper fine-tunes an already trained RM on them (``rewardlab train --base RM_DIR``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from typing import Any

from rewardlab.data.records import PreferencePair, Prompt, Response

CONFIDENCE = re.compile(r"confidence:\s*(\d+(?:\.\d+)?)(?:\s*/\s*10\b)?", re.IGNORECASE)
STATEMENT = re.compile(r"\s*confidence:\s*\d+(?:\.\d+)?(?:\s*/\s*10\b)?\s*[.,;!?]*", re.IGNORECASE)
INSTRUCTION = ("End your answer with a line 'Confidence: N', where N from 0 to 10 says how sure you are that the "
               "answer is accurate or helpful.")
HIGH, LOW = (7, 10), (0, 3)  # the paper's ranges of appended high / low confidence scores (integers, inclusive)


def _text(response: Response) -> str:
    """The text a confidence statement is read from: a string, or a conversation's last message."""
    if isinstance(response, str):
        return response
    return str(response[-1].get("content", "")) if response else ""


def _with_text(response: Response, text: str) -> Response:
    if isinstance(response, str):
        return text
    return [*response[:-1], {**response[-1], "content": text}]


def read_confidence(response: Response) -> float | None:
    """N of the last ``Confidence: N`` statement, clipped to [0, 10]; None when the response states none."""
    found = CONFIDENCE.findall(_text(response))
    return min(10.0, max(0.0, float(found[-1]))) if found else None


def strip_confidence(response: Response) -> Response:
    """The response without its ``Confidence: N`` statements (and the punctuation right after them)."""
    return _with_text(response, STATEMENT.sub("", _text(response)).rstrip())


def append_confidence(response: Response, score: int) -> Response:
    """``response`` followed by the line ``Confidence: score.``"""
    return _with_text(response, f"{_text(response).rstrip()}\nConfidence: {score}.")


def ask_confidence(prompt: Prompt, instruction: str) -> Prompt:
    """The prompt with ``instruction`` after it (a conversation: appended to its last message); unchanged when
    ``instruction`` is empty or the row has no prompt of its own (implicit-prompt rows: the texts carry it)."""
    if not instruction or not prompt:
        return prompt
    if isinstance(prompt, str):
        return f"{prompt.rstrip()}\n\n{instruction}"
    return _with_text(prompt, f"{_text(prompt).rstrip()}\n\n{instruction}")


def confidence_pairs(pairs: Iterable[PreferencePair], seed: int = 0, instruction: str = INSTRUCTION,
                     high: tuple[int, int] = HIGH, low: tuple[int, int] = LOW) -> Iterator[dict[str, Any]]:
    """PPO-M's two rows per pair (see the module docstring), as JSON-ready dicts; ids get ``#chosen`` /
    ``#rejected``. Scores come from one ``random.Random(seed)``: four draws per pair, in the order h, l, h', l'."""
    rng = random.Random(seed)
    for p in pairs:
        h, lo, h2, lo2 = rng.randint(*high), rng.randint(*low), rng.randint(*high), rng.randint(*low)
        x = ask_confidence(p.prompt, instruction)
        for tag, response, chosen, rejected in (("chosen", p.chosen, h, lo), ("rejected", p.rejected, lo2, h2)):
            y = strip_confidence(response)  # a statement the response already makes is replaced
            row: dict[str, Any] = {"prompt": x, "chosen": append_confidence(y, chosen),
                                   "rejected": append_confidence(y, rejected)}
            if p.id is not None:
                row["id"] = f"{p.id}#{tag}"
            if p.subset is not None:
                row["subset"] = p.subset
            yield row


def write_confidence_pairs(path: Any, output: Any, seed: int = 0, instruction: str = INSTRUCTION,
                           split: str | None = None, skip_invalid: bool = False) -> tuple[int, int]:
    """``rewardlab data confidence-pairs``: read the pairs of ``path`` (checked row by row: FILE:LINE), write PPO-M's
    rows to ``output`` (JSONL, atomically); returns (pairs read, rows written)."""
    from rewardlab.data.load import load_pairs
    from rewardlab.io import write_jsonl_atomic

    pairs = load_pairs(path, split=split, skip_invalid=skip_invalid)
    rows = list(confidence_pairs(pairs, seed, instruction))
    write_jsonl_atomic(output, rows)
    return len(pairs), len(rows)
