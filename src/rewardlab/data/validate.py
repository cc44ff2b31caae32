"""Row schema detection and strict validation. Pure functions on parsed JSON values.

Every problem is reported as a message naming the field; the loader prefixes it with ``FILE:LINE:``. Schemas:
``pair-plain`` / ``pair-conversational`` / ``pair-implicit`` (TRL preference rows), ``kway`` (RewardBench 2 rows with
lists of chosen and rejected responses), ``rated`` (HelpSteer2-style rows with per-attribute ratings).

Rules:

- Any string is a valid text, ``""`` and whitespace included (hh-rlhf has empty responses; an explicit
  ``"prompt": ""`` means "no prompt"), unless it holds a lone surrogate (``"\\ud800"``: JSON accepts the escape, but
  it is not Unicode text and tokenizers fail on it). The only pair that is refused for its texts is
  ``chosen == rejected``.
- Message roles are ``system``, ``user``, ``assistant`` or ``tool``. A conversational *response* (chosen, rejected,
  a k-way item, a rated response) is made of assistant turns: it starts and ends with one, with only tool results
  between them; earlier turns belong in the prompt.
- Implicit-prompt rows (no ``prompt`` field, or a string one beside conversations that hold the prompt turns, see
  :func:`prompt_column_unused`) get the prompt that chosen and rejected share, see :func:`split_prompt`.
"""

from __future__ import annotations

import math
from typing import Any

from rewardlab.data.records import KWayRow, PreferencePair, RatedRow, Response, Row, row_items

SCHEMAS = ("pair-plain", "pair-conversational", "pair-implicit", "kway", "rated", "response")
ROLES = ("system", "user", "assistant", "tool")
TURN_MARKER = "\n\nAssistant:"


class RowError(ValueError):
    """One problem with one row; the message names the field."""


class HugeInt:
    """A JSON integer with more digits than Python's ``int()`` accepts (``sys.get_int_max_str_digits()``)."""

    def __init__(self, digits: str):
        self.digits = len(digits.lstrip("-"))

    def __repr__(self) -> str:
        return f"an integer with {self.digits} digits"


def _type_name(v: Any) -> str:
    if isinstance(v, HugeInt):
        return repr(v)
    if isinstance(v, list) and not v:
        return "an empty list"
    return "null" if v is None else type(v).__name__


def _require(row: dict, field: str) -> Any:
    if field not in row:
        raise RowError(f"field '{field}' missing")
    if row[field] is None:
        raise RowError(f"field '{field}' is null")
    return row[field]


def _text(s: str, field: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RowError(f"field '{field}' holds a lone surrogate {s[e.start]!r} at character {e.start} "
                       "(not valid Unicode text)") from None
    return s


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(m, dict) for m in v)


def _check_messages(v: list, field: str) -> list[dict[str, str]]:
    out = []
    for i, m in enumerate(v):
        for key in ("role", "content"):
            if not isinstance(m.get(key), str):
                raise RowError(f"field '{field}[{i}].{key}' must be a string, got {_type_name(m.get(key))}")
            _text(m[key], f"{field}[{i}].{key}")
        if m["role"] not in ROLES:
            raise RowError(f"field '{field}[{i}].role' must be one of {', '.join(ROLES)}; got {m['role']!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _check_response_turns(messages: list[dict[str, str]], field: str, offset: int = 0) -> None:
    """A conversational response starts and ends with an assistant turn, with only tool results in between."""
    for i, m in enumerate(messages):
        edge = i in (0, len(messages) - 1)
        if m["role"] != "assistant" and (edge or m["role"] != "tool"):
            raise RowError(f"field '{field}[{i + offset}].role' is {m['role']!r}: a response is made of assistant "
                           "turns (tool results only between them); earlier turns belong in the prompt")


def _text_or_messages(v: Any, field: str, response: bool = False) -> str | list[dict[str, str]]:
    if isinstance(v, str):
        return _text(v, field)
    if _is_messages(v):
        messages = _check_messages(v, field)
        if response:
            _check_response_turns(messages, field)
        return messages
    raise RowError(f"field '{field}' must be a string or a list of messages, got {_type_name(v)}")


def _number(row: dict, field: str, default: float, name: str | None = None) -> float:
    v = row.get(field, default)
    field = name or field
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RowError(f"field '{field}' must be a finite number, got {v!r}")
    return float(v)


def _optional_str(row: dict, field: str) -> str | None:
    v = row.get(field)
    if v is None:
        return None
    if isinstance(v, str):
        return _text(v, field)
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float) and v.is_integer():  # pandas stores an int column with nulls as float64: 3.0 is 3
        return str(int(v))
    if isinstance(v, HugeInt):
        raise RowError(f"field '{field}' must be a string, got {_type_name(v)}")
    raise RowError(f"field '{field}' must be a string or an integer, got {_type_name(v)}"
                   + (f" {v!r}" if isinstance(v, float) else ""))


def _shared_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search over C-speed slice compares, O(n log n))."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def split_prompt(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two full texts into ``(prompt, chosen_response, rejected_response)``; ``prompt + response`` is the text.

    The prompt is the shared start of both texts, cut at the end of the last ``"\\n\\nAssistant:"`` marker inside it
    when there is one (hh-rlhf's raw format: the prompt then never ends inside a response, even when both responses
    begin with the same words); otherwise TRL's ``extract_prompt`` rule: the whole common prefix, less a final
    space, which goes to the responses ("The sky is" + " blue." / " green."). ``""`` when nothing is shared.
    """
    n = _shared_prefix_len(chosen, rejected)
    marker = chosen.rfind(TURN_MARKER, 0, n)
    if marker >= 0:
        n = marker + len(TURN_MARKER)
    elif n > 0 and chosen[n - 1] == " ":
        n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def _split_messages(chosen: list, rejected: list) -> tuple[list, list, list]:
    """Shared leading messages become the prompt (TRL's ``extract_prompt`` on message lists)."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    return chosen[:n], chosen[n:], rejected[n:]


def _implicit(chosen: Any, rejected: Any) -> tuple[Any, Response, Response]:
    """Validate the full texts of an implicit-prompt row and split off the prompt they share."""
    chosen = _text_or_messages(chosen, "chosen")
    rejected = _text_or_messages(rejected, "rejected")
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise RowError("fields 'chosen' and 'rejected' must both be strings or both be message lists")
    if chosen == rejected:
        raise RowError("chosen and rejected are identical")
    if isinstance(chosen, str):
        return split_prompt(chosen, rejected)
    prompt, c, r = _split_messages(chosen, rejected)
    for field, tail in (("chosen", c), ("rejected", r)):
        if not tail:
            raise RowError(f"field '{field}' has no turns after the {len(prompt)} it shares with the other "
                           "response (nothing to compare)")
        _check_response_turns(tail, field, offset=len(prompt))
    return prompt or "", c, r


def has_empty_response(row: Row) -> bool:
    """Whether any response of ``row`` is empty or whitespace-only (a message list: all its contents are)."""
    return any(not (r if isinstance(r, str) else "".join(m["content"] for m in r)).strip() for _, r in row_items(row))


def detect_schema(row: Any) -> str:
    """Which schema a parsed row follows (raises RowError if none)."""
    if not isinstance(row, dict):
        raise RowError(f"row must be a JSON object, got {_type_name(row)}")
    if "attributes" in row:
        return "rated"
    if "response" in row and "chosen" not in row:
        return "response"  # a single (prompt, response) to score: a rated row without ratings
    if "chosen" not in row and ("completions" in row or "steps" in row):
        raise RowError("field 'chosen' missing: this is a stepwise (process-reward) row, which this command does "
                       "not take (use eval-prm, or train --objective prm)")
    chosen = _require(row, "chosen")
    if isinstance(chosen, list) and chosen and not isinstance(chosen[0], dict):
        return "kway"
    if "prompt" not in row or prompt_column_unused(row):
        return "pair-implicit"
    return "pair-conversational" if isinstance(chosen, list) else "pair-plain"


def prompt_column_unused(row: dict) -> bool:
    """A string ``prompt`` beside conversations that hold the prompt turns themselves (UltraFeedback-binarized:
    ``chosen = [user, assistant]``). As TRL's ``maybe_extract_prompt``, such a row is an implicit-prompt row: the
    prompt is the turns chosen and rejected share, the ``prompt`` column is not used (it would repeat the user turn).
    Conversations made of assistant turns only keep the string prompt."""
    chosen = row.get("chosen")
    return isinstance(row.get("prompt"), str) and _is_messages(chosen) and chosen[0].get("role") != "assistant"


def parse_prompt(row: Any) -> str | list[dict[str, str]]:
    """The non-empty prompt of a prompts-file row (``{"prompt": ...}``) or of any data row (an implicit-prompt
    pair's is the start its texts share, see :func:`split_prompt`); raises RowError."""
    if isinstance(row, dict) and any(k in row for k in ("chosen", "response", "attributes")):
        prompt = parse_row(row)[1].prompt
        if not (prompt.strip() if isinstance(prompt, str) else prompt):
            raise RowError("row has no prompt ('prompt' empty, or chosen and rejected share no start)")
        return prompt
    prompt = row.get("prompt") if isinstance(row, dict) else None
    if not (isinstance(prompt, str) and prompt.strip()) and not _is_messages(prompt):
        raise RowError("field 'prompt' missing or not a non-empty string/message list")
    return _text_or_messages(prompt, "prompt")


def parse_row(row: Any) -> tuple[str, Row]:
    """Validate a parsed row and build its record. Returns ``(schema, record)``; raises RowError."""
    schema = detect_schema(row)
    common = {"id": _optional_str(row, "id")}
    if schema in ("rated", "response"):
        values = {}
        if schema == "rated":
            attrs = _require(row, "attributes")
            if not isinstance(attrs, dict) or not attrs:
                raise RowError(f"field 'attributes' must be a non-empty object, got {_type_name(attrs)}")
            values = {_text(str(k), "attributes"): _number(attrs, k, math.nan, f"attributes.{k}") for k in attrs}
        prompt = _text_or_messages(_require(row, "prompt"), "prompt")
        response = _text_or_messages(_require(row, "response"), "response", response=True)
        return schema, RatedRow(prompt, response, values, **common)
    subset = _optional_str(row, "subset")
    if schema == "kway":
        prompt = _text_or_messages(_require(row, "prompt"), "prompt")
        lists = {}
        for field in ("chosen", "rejected"):
            v = _require(row, field)
            if not isinstance(v, list) or not v:
                raise RowError(f"field '{field}' must be a non-empty list of responses, got {_type_name(v)}")
            lists[field] = [_text_or_messages(x, f"{field}[{i}]", response=True) for i, x in enumerate(v)]
        if set(map(str, lists["chosen"])) & set(map(str, lists["rejected"])):
            raise RowError("a response appears in both 'chosen' and 'rejected'")
        return schema, KWayRow(prompt, lists["chosen"], lists["rejected"], subset=subset, **common)
    if schema == "pair-implicit":
        prompt, chosen, rejected = _implicit(_require(row, "chosen"), _require(row, "rejected"))
    else:
        prompt = _text_or_messages(_require(row, "prompt"), "prompt")
        chosen = _text_or_messages(_require(row, "chosen"), "chosen", response=True)
        rejected = _text_or_messages(_require(row, "rejected"), "rejected", response=True)
        if isinstance(chosen, str) != isinstance(rejected, str):
            raise RowError("fields 'chosen' and 'rejected' must both be strings or both be message lists")
        if chosen == rejected:
            raise RowError("chosen and rejected are identical")
    weight = _number(row, "weight", 1.0)
    if weight < 0:
        raise RowError(f"field 'weight' must be >= 0, got {weight}")
    pair = PreferencePair(prompt, chosen, rejected, margin=_number(row, "margin", 0.0), weight=weight,
                          subset=subset, **common)
    return schema, pair
