"""Row schema detection and strict validation (DESIGN §2). Pure functions on parsed JSON values.

Every problem is reported as a message; the loader prefixes it with ``FILE:LINE:``. Schemas:
``pair-plain`` / ``pair-conversational`` / ``pair-implicit`` (TRL preference rows), ``kway`` (RewardBench 2 rows with
lists of chosen and rejected responses), ``rated`` (HelpSteer2-style rows with per-attribute ratings).
"""

from __future__ import annotations

import math
from typing import Any

from rewardlab.data.records import KWayRow, PreferencePair, RatedRow, Row

SCHEMAS = ("pair-plain", "pair-conversational", "pair-implicit", "kway", "rated")


class RowError(ValueError):
    """One problem with one row; the message names the field."""


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _require(row: dict, field: str) -> Any:
    if field not in row:
        raise RowError(f"field '{field}' missing")
    if row[field] is None:
        raise RowError(f"field '{field}' is null")
    return row[field]


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(m, dict) for m in v)


def _check_messages(v: list, field: str) -> list[dict[str, str]]:
    for i, m in enumerate(v):
        for key in ("role", "content"):
            if not isinstance(m.get(key), str):
                raise RowError(f"field '{field}[{i}].{key}' must be a string, got {_type_name(m.get(key))}")
    return [{"role": m["role"], "content": m["content"]} for m in v]


def _text_or_messages(v: Any, field: str) -> str | list[dict[str, str]]:
    if isinstance(v, str):
        if not v.strip():
            raise RowError(f"field '{field}' is empty")
        return v
    if _is_messages(v):
        return _check_messages(v, field)
    raise RowError(f"field '{field}' must be a string or a list of messages, got {_type_name(v)}")


def _number(row: dict, field: str, default: float) -> float:
    v = row.get(field, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RowError(f"field '{field}' must be a finite number, got {v!r}")
    return float(v)


def _optional_str(row: dict, field: str) -> str | None:
    v = row.get(field)
    if v is None:
        return None
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        return str(v)
    raise RowError(f"field '{field}' must be a string, got {_type_name(v)}")


def detect_schema(row: Any) -> str:
    """Which schema a parsed row follows (raises RowError if none)."""
    if not isinstance(row, dict):
        raise RowError(f"row must be a JSON object, got {_type_name(row)}")
    if "attributes" in row or ("response" in row and "chosen" not in row):
        return "rated"
    chosen = _require(row, "chosen")
    if isinstance(chosen, list) and chosen and not isinstance(chosen[0], dict):
        return "kway"
    if "prompt" not in row:
        return "pair-implicit"
    return "pair-conversational" if isinstance(chosen, list) else "pair-plain"


def parse_row(row: Any) -> tuple[str, Row]:
    """Validate a parsed row and build its record. Returns ``(schema, record)``; raises RowError."""
    schema = detect_schema(row)
    common = {"id": _optional_str(row, "id")}
    if schema == "rated":
        attrs = _require(row, "attributes")
        if not isinstance(attrs, dict) or not attrs:
            raise RowError(f"field 'attributes' must be a non-empty object, got {_type_name(attrs)}")
        values = {str(k): _number(attrs, k, math.nan) for k in attrs}
        prompt = _text_or_messages(_require(row, "prompt"), "prompt")
        return schema, RatedRow(prompt, _text_or_messages(_require(row, "response"), "response"), values, **common)
    subset = _optional_str(row, "subset")
    if schema == "kway":
        prompt = _text_or_messages(_require(row, "prompt"), "prompt")
        lists = {}
        for field in ("chosen", "rejected"):
            v = _require(row, field)
            if not isinstance(v, list) or not v:
                raise RowError(f"field '{field}' must be a non-empty list of responses, got {_type_name(v)}")
            lists[field] = [_text_or_messages(x, f"{field}[{i}]") for i, x in enumerate(v)]
        if set(map(str, lists["chosen"])) & set(map(str, lists["rejected"])):
            raise RowError("a response appears in both 'chosen' and 'rejected'")
        return schema, KWayRow(prompt, lists["chosen"], lists["rejected"], subset=subset, **common)
    prompt = "" if schema == "pair-implicit" else _text_or_messages(_require(row, "prompt"), "prompt")
    chosen = _text_or_messages(_require(row, "chosen"), "chosen")
    rejected = _text_or_messages(_require(row, "rejected"), "rejected")
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
