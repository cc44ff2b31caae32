"""Atomic file output: write to a temp file in the same directory, then ``os.replace`` (never a half-written file)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def open_atomic(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with open_atomic(path) as f:`` -- a binary temp file next to ``path``, fsynced and moved into place
    (``os.replace``, permissions 0666 & ~umask) when the block ends normally; removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + ``os.replace``, with the usual permissions (0666 & ~umask)."""
    with open_atomic(path) as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_file(path: str | os.PathLike, flag: str = "--output") -> Path:
    """Fail early (UserError, before any work) if a file cannot be written at ``path``; creates nothing."""
    from rewardlab.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file path")
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise UserError(f"{flag} {path}: {anchor} is a file, not a directory")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {anchor} is not writable")
    return path


def check_output_dir(path: str | os.PathLike, flag: str = "--output") -> Path:
    """Fail early (UserError, before any work) if ``path`` cannot be used as an output directory; creates nothing."""
    from rewardlab.errors import UserError

    path = Path(path)
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        what = "is a file" if anchor == path.absolute() else f"lies under {anchor}, which is a file"
        raise UserError(f"{flag} {path}: {what}, expected a directory")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {anchor} is not writable")
    return path
