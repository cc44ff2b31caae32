"""Score records: the rows of a data file scored by one reward, as the JSONL records ``rewardlab score`` writes
(``chosen_score``/``rejected_score``, ``chosen_scores``/``rejected_scores`` for k-way rows, ``score`` for single
responses; the row's ``id`` kept). Used by the local job (:mod:`rewardlab.rewards.scoring`) and the Ray actors
(:mod:`rewardlab.rewards.ray_engine`) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def score_rows(r: Any, rows: Sequence[Any]) -> list[dict]:
    """Score records for ``rows`` in order (one ``score`` call for all their items)."""
    from rewardlab.data.records import KWayRow, PreferencePair, row_items
    from rewardlab.data.tokenize import ChatTemplateError

    prompts, responses, spans = [], [], []
    for row in rows:
        items = [x for _, x in row_items(row)]
        spans.append((len(responses), len(items)))
        prompts += [row.prompt] * len(items)
        responses += items
    try:
        scores = r.score(prompts, responses).tolist()
    except ChatTemplateError as e:
        raise locate_template_error(r, rows, e) from None
    out = []
    for row, (start, n) in zip(rows, spans):
        s = scores[start : start + n]
        rec = {"id": row.id} if row.id is not None else {}
        if isinstance(row, PreferencePair):
            rec.update(chosen_score=s[0], rejected_score=s[1])
        elif isinstance(row, KWayRow):
            rec.update(chosen_scores=s[: len(row.chosen)], rejected_scores=s[len(row.chosen) :])
        else:
            rec.update(score=s[0])
        out.append(rec)
    return out


def locate_template_error(r: Any, rows: Sequence[Any], error: Exception) -> Exception:
    """The chat-template refusal of some item in ``rows``, as ``FILE:LINE: field`` problems: rendered with the
    reward's encoder when it has one, else scored one item at a time up to the first refused one."""
    from rewardlab.data.load import DataError, summarize
    from rewardlab.data.records import row_items
    from rewardlab.data.tokenize import ChatTemplateError, template_problems

    if hasattr(r, "encoder"):
        problems = template_problems(r.encoder, rows)
    else:
        problems = []
        for row in rows:
            for tag, response in row_items(row):
                try:
                    r.score([row.prompt], [response])
                except ChatTemplateError as e:
                    problems = [f"{row.source}: field '{tag}': the chat template refused this conversation: "
                                f"{e.reason}"]
                    break
            if problems:
                break
    return DataError(problems, summarize(problems, 0)) if problems else error
