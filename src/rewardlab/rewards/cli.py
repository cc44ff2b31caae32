"""`rewardlab score` — batched scoring of a data file with any reward."""

from __future__ import annotations

from pathlib import Path

import typer


def score(
    reward: str = typer.Argument(..., help="A reward spec: checkpoint dir, python:MODULE:FN, ..."),
    file: Path = typer.Argument(..., help="Pairs (chosen/rejected), k-way rows, rated rows or {prompt, response}."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL with scores, in input order (written atomically)."),
    batch_size: int = typer.Option(32, help="Items per forward pass (length-sorted)."),
    device: str | None = typer.Option(None, help="cpu / cuda (default: cpu)."),
) -> None:
    """Score every row: pairs get chosen_score/rejected_score, k-way rows chosen_scores/rejected_scores, single
    responses a score."""
    from rewardlab.data.load import load_rows
    from rewardlab.data.records import KWayRow, PreferencePair
    from rewardlab.io import write_jsonl_atomic
    from rewardlab.rewards.registry import load_reward

    rows = load_rows(file)
    r = load_reward(reward, device=device)
    if hasattr(r, "batch_size"):
        r.batch_size = batch_size
    prompts, responses, spans = [], [], []
    for row in rows:
        if isinstance(row, PreferencePair):
            items = [row.chosen, row.rejected]
        elif isinstance(row, KWayRow):
            items = row.chosen + row.rejected
        else:
            items = [row.response]
        spans.append((len(responses), len(items)))
        prompts += [row.prompt] * len(items)
        responses += items
    scores = r.score(prompts, responses).tolist()
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
    write_jsonl_atomic(output, out)
    typer.echo(f"scored {len(responses)} responses from {len(rows)} rows -> {output}")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
