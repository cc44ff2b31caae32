"""What a multi-objective reward says per item (``rewardlab inspect``): per-attribute scores, decorrelated scores and
gate weights (ArmoRM, :mod:`rewardlab.rewards.multiobjective`), and how DPA rankings rotate between two attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Rotation:
    """DPA rankings as v(θ) = cos θ·e_A + sin θ·e_B rotates, per group of responses to one prompt."""

    a: str
    b: str
    thetas: list[float]
    groups: list[tuple[str, list[list[str]]]]  # (prompt, per θ: the group's item ids best first)
    changed: int  # groups whose ranking changes with θ
    pooled: bool = False  # no prompt has two responses: all items are ranked as one group


@dataclass
class Inspection:
    names: list[str]  # the attributes
    items: list[dict[str, Any]]  # per item: id, score, attributes, decorrelated and gate (name -> value) when known
    beta: float | None = None
    gate: bool = False  # the items have gate weights
    rotation: Rotation | None = field(default=None)


def row_id(row: Any, n: int) -> str:
    """A row's name in the output: its ``id`` when it has one, else ``L<line>`` (its line in the file; a row of a
    saved dataset, its row number) or, without a source, ``#<index>``."""
    if row.id is not None:
        return str(row.id)
    return f"L{row.source.line}" if row.source is not None else f"#{n}"


def items(rows: Any) -> tuple[list, list, list]:
    """Flatten rows into (prompts, responses, ids): pairs → chosen, rejected; k-way → all; rated → the response.
    An item's id is ``ROW:TAG`` (:func:`row_id`, e.g. ``L12:chosen``)."""
    from rewardlab.data.records import row_items

    prompts, responses, ids = [], [], []
    for n, row in enumerate(rows):
        for tag, x in row_items(row):
            prompts.append(row.prompt)
            responses.append(x)
            ids.append(f"{row_id(row, n)}:{tag}")
    return prompts, responses, ids


def inspect_reward(reward: str, file: Path, *, rotate: str | None = None, angles: int = 7, device: str = "auto",
                   dtype: str = "auto", split: str | None = None, skip_invalid: bool = False,
                   output: Path | None = None) -> Inspection:
    """Score every item of ``file`` with the reward spec ``reward`` (an ArmoRM checkpoint, an armo:/dpa: spec or a
    k-output checkpoint) per attribute; with ``rotate="A,B"`` also the rankings within each prompt's responses over
    ``angles`` angles θ ∈ [−90°, 90°]. The items are written to ``output`` (JSONL) when given."""
    from rewardlab.data.load import load_rows
    from rewardlab.errors import UserError
    from rewardlab.io import write_jsonl_atomic
    from rewardlab.rewards.registry import load_reward

    rows = load_rows(file, split=split, skip_invalid=skip_invalid)
    r = load_reward(reward, device=device, dtype=dtype)
    prompts, responses, ids = items(rows)
    if hasattr(r, "inspect"):
        info = r.inspect(prompts, responses)
    else:  # a k-output reward's outputs are its attributes; a DPA reward's are its base's (rewards.base)
        from rewardlab.rewards.base import attribute_names

        score = r.score(prompts, responses)
        named = attribute_names(r)
        attrs = score if score.dim() == 2 or not named else r.attributes(prompts, responses)
        if attrs.dim() != 2:
            raise UserError(f"{reward}: a scalar reward has no attributes to inspect")
        info = {"names": named or [f"out{i}" for i in range(attrs.shape[1])], "attributes": attrs,
                "score": score.mean(1) if score.dim() == 2 else score}
    names = info["names"]
    per_item = [{"id": i, "score": float(info["score"][n])} for n, i in enumerate(ids)]
    for key in ("attributes", "decorrelated", "gate"):
        if key in info:
            for n, rec in enumerate(per_item):
                rec[key] = dict(zip(names, [float(x) for x in info[key][n]]))
    result = Inspection(names, per_item, info.get("beta"), "gate" in info)
    if rotate:
        result.rotation = _rotation(rotate, angles, names, info["attributes"], prompts, ids)
    if output:
        write_jsonl_atomic(output, per_item)
    return result


def _rotation(rotate: str, angles: int, names: list[str], attributes: Any, prompts: list, ids: list[str]) -> Rotation:
    from rewardlab.errors import UserError
    from rewardlab.rewards.multiobjective import rotation_rankings

    a, _, b = rotate.partition(",")
    if a not in names or b not in names:
        raise UserError(f"--rotate {rotate!r}: both must be among the attributes {names}")
    thetas = [-90 + 180 * i / max(1, angles - 1) for i in range(angles)]
    groups: dict[str, list[int]] = {}
    for n, p in enumerate(prompts):
        groups.setdefault(str(p), []).append(n)
    multi = [g for g in groups.values() if len(g) > 1]
    pooled = not multi
    changed, shown = 0, []
    for g in multi or [list(range(len(prompts)))]:
        ranks = rotation_rankings(attributes[g], names.index(a), names.index(b), thetas)
        changed += len({tuple(x) for x in ranks}) > 1
        shown.append(("(all items)" if pooled else str(prompts[g[0]]), [[ids[g[i]] for i in x] for x in ranks]))
    return Rotation(a, b, thetas, shown, changed, pooled)
