"""Scoring jobs: every row of a data file scored by one reward into a JSONL of records (``rewardlab score``).

:func:`score_file` runs a job on this process (resumable, chunk by chunk: :mod:`rewardlab.rewards.partial`) or on
Ray Data (:mod:`rewardlab.rewards.ray_engine`); both turn rows into records with
:func:`rewardlab.rewards.records.score_rows` (a module of its own, so that the Ray actors import it without
importing this one), and a chat template that refuses a conversation is reported as ``FILE:LINE: field`` problems
by :func:`rewardlab.rewards.records.locate_template_error`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from rewardlab.rewards.records import score_rows


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def score_file(reward: str, file: Path, output: Path, *, batch_size: int = 32, chunk_rows: int = 1024,
               resume: bool = True, device: str = "auto", dtype: str = "auto", chat_template: Path | None = None,
               attn_implementation: str | None = None, reference: Path | None = None, engine: str = "local",
               num_replicas: int = 1, num_gpus_per_replica: float = 0.0, split: str | None = None,
               skip_invalid: bool = False, log: Callable[[str], None] = _stderr,
               echo: Callable[[str], None] = print) -> int:
    """Score every row of ``file`` with the reward spec ``reward`` into ``output``; returns the number of rows.

    ``engine="local"``: rows are scored ``chunk_rows`` at a time into ``OUTPUT.partial`` (continued when ``resume``
    and it was written for the same input, reward and settings; ``echo`` says how far), renamed into place when
    complete. ``engine="ray"``: Ray Data actors, no resume (:func:`rewardlab.rewards.ray_engine.score_on_ray`).
    ``chat_template``: a Jinja template file used instead of the tokenizer's. ``log`` gets the reward's notes (an
    ensemble's member statistics)."""
    from rewardlab.models.device import read_chat_template, resolve_device, resolve_dtype

    if engine == "ray":
        from rewardlab.rewards.ray_engine import score_on_ray

        return score_on_ray(reward, file, output, num_replicas=num_replicas,
                            num_gpus_per_replica=num_gpus_per_replica, batch_size=batch_size, chunk_rows=chunk_rows,
                            device=device, dtype=dtype, chat_template=read_chat_template(chat_template),
                            attn_implementation=attn_implementation, reference=reference)
    from rewardlab.data.load import load_rows
    from rewardlab.data.read import resolve_data_path
    from rewardlab.rewards.ensemble import ready_for_scoring
    from rewardlab.rewards.partial import PartialOutput, file_fingerprint, reward_fingerprint
    from rewardlab.rewards.registry import load_reward

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    template = read_chat_template(chat_template)
    rows = load_rows(file, split=split, skip_invalid=skip_invalid)
    settings = {"reward": reward_fingerprint(reward), "device": str(dev), "dtype": str(dt),
                "batch_size": batch_size, **({"split": split} if split is not None else {}),
                "chat_template": template, "attn_implementation": attn_implementation,
                "reference": file_fingerprint(reference) if reference is not None and reference.is_file()
                else None}
    r = load_reward(reward, device=str(dev), dtype=dtype, chat_template=template,
                    attn_implementation=attn_implementation)
    for line in ready_for_scoring(r, reward, reference):
        log(line)
    if hasattr(r, "batch_size"):
        r.batch_size = batch_size
    partial = PartialOutput(output, resolve_data_path(file), len(rows), chunk_rows, settings)
    done = partial.open(resume)
    if done:
        echo(f"resuming {partial.path}: {done} of {len(rows)} rows already scored")
    for start in range(done, len(rows), chunk_rows):
        partial.write(score_rows(r, rows[start : start + chunk_rows]))
    partial.finish()
    return len(rows)
