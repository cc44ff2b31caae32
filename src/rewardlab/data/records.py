"""Row types for preference data (TRL schema), k-way rows (RewardBench 2 style) and rated rows (HelpSteer2 style).

A *prompt* or *response* is either plain text or a conversation: a list of ``{"role": ..., "content": ...}``
messages. Everything downstream (rewards, evaluation, optimization, serving) speaks these two types.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

Message = dict[str, str]
Prompt = str | list[Message]
Response = str | list[Message]


def prompt_key(prompt: Prompt) -> str:
    """A hashable key for a prompt: the text itself, or a conversation's canonical JSON (keys sorted)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


@dataclass
class Source:
    """Where a row came from, for `FILE:LINE: message` errors."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class PreferencePair:
    """One pairwise preference: ``chosen`` is preferred over ``rejected`` for ``prompt``.

    ``prompt`` is ``""`` for implicit-prompt rows (the texts carry the prompt). ``margin`` is the label strength used
    by the margin BT loss; ``subset`` names the benchmark subset for section-weighted scoring.
    """

    prompt: Prompt
    chosen: Response
    rejected: Response
    margin: float = 0.0
    weight: float = 1.0
    subset: str | None = None
    id: str | None = None
    source: Source | None = field(default=None, compare=False, repr=False)


@dataclass
class KWayRow:
    """A RewardBench-2-style row: several correct (``chosen``) and incorrect (``rejected``) responses."""

    prompt: Prompt
    chosen: list[Response]
    rejected: list[Response]
    subset: str | None = None
    id: str | None = None
    source: Source | None = field(default=None, compare=False, repr=False)


@dataclass
class RatedRow:
    """A response with per-attribute ratings (HelpSteer2 style), for multi-objective heads."""

    prompt: Prompt
    response: Response
    attributes: dict[str, float]
    id: str | None = None
    source: Source | None = field(default=None, compare=False, repr=False)


Row = PreferencePair | KWayRow | RatedRow


def pairs_to_items(pairs: Sequence[PreferencePair]) -> tuple[list[Prompt], list[Response]]:
    """Flatten pairs into (prompts, responses) as ``[chosen_0, rejected_0, chosen_1, rejected_1, ...]``."""
    prompts: list[Prompt] = []
    responses: list[Response] = []
    for p in pairs:
        prompts += [p.prompt, p.prompt]
        responses += [p.chosen, p.rejected]
    return prompts, responses


def row_items(row: Row) -> list[tuple[str, Response]]:
    """``(tag, response)`` for every response a row holds: a pair's ``chosen`` and ``rejected``, a k-way row's
    ``chosen0..`` then ``rejected0..``, a rated row's ``response``."""
    if isinstance(row, PreferencePair):
        return [("chosen", row.chosen), ("rejected", row.rejected)]
    if isinstance(row, KWayRow):
        return [(f"chosen{i}", x) for i, x in enumerate(row.chosen)] + \
            [(f"rejected{i}", x) for i, x in enumerate(row.rejected)]
    return [("response", row.response)]
