"""Resumable JSONL output for long scoring runs (``rewardlab score``): a killed run continues where it stopped.

Layout next to ``OUT``:

- ``OUT.partial`` — the finished rows so far, one JSON line each, exactly as they will appear in ``OUT``; rows are
  written in chunks of ``chunk_rows`` (rows ``[k·C, (k+1)·C)``), each chunk with one write + flush + fsync.
- ``OUT.partial.json`` — what the partial was written for: the input file's sha256, the reward (spec and the size
  and mtime of its files), device, dtype, batch size, chunk size and row count. It is written before the partial.
- ``OUT.lock`` — held by the run writing them (:func:`rewardlab.io.output_lock`): a second ``score`` into ``OUT``
  exits 2 at once instead of appending its chunks to ours; removed when the run ends.

On start, a partial whose sidecar matches is resumed: it is cut back to its last complete chunk (a chunk half-written
when the process died is dropped) and scoring continues with the next chunk. Chunk boundaries do not depend on
where a run stopped, so every chunk is scored with the same batches as in an uninterrupted run and the final file is
byte-identical to one. Anything else (no sidecar, a different input or reward, ``--restart``) starts over. When all
rows are done, ``OUT.partial`` is renamed to ``OUT`` (``os.replace``: atomic) and the sidecar removed — no temporary
file is ever created, so a kill at any moment leaves no orphan ``.tmp`` behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's bytes, or of a directory's files (relative names and bytes, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def reward_fingerprint(spec: str) -> dict[str, Any]:
    """The spec and, for every existing path named in it, its files' (size, mtime_ns): a retrained checkpoint in the
    same directory is a different reward."""
    files: dict[str, list[int]] = {}
    for part in re.split(r"[:,=]", spec):
        p = Path(part)
        if part and p.exists():
            for f in sorted(p.iterdir() if p.is_dir() else [p]):
                if f.is_file():
                    st = f.stat()
                    files[str(f.resolve())] = [st.st_size, st.st_mtime_ns]
    return {"spec": spec, "files": files}


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class PartialOutput:
    """Writes ``OUT`` through ``OUT.partial`` (see the module docstring)."""

    def __init__(self, output: Path, input_path: Path, rows: int, chunk_rows: int, settings: dict[str, Any]):
        self.output = Path(output)
        self.path = self.output.with_name(self.output.name + ".partial")
        self.meta_path = self.output.with_name(self.output.name + ".partial.json")
        self.rows, self.chunk_rows = rows, chunk_rows
        self.meta = {"format": 1, "input": file_fingerprint(Path(input_path)), "rows": rows,
                     "chunk_rows": chunk_rows, **settings}
        self.done = 0

    def _saved_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):  # missing, or cut short by a kill while it was written
            return None

    def open(self, resume: bool = True) -> int:
        """Resume a matching partial or start a new one; returns the number of rows already done."""
        if resume and self.path.exists() and self._saved_meta() == self.meta:
            self.done = self._cut_to_last_chunk()
            return self.done
        self.path.unlink(missing_ok=True)
        _fsync_write(self.meta_path, (json.dumps(self.meta) + "\n").encode())
        _fsync_write(self.path, b"")
        self.done = 0
        return 0

    def _cut_to_last_chunk(self) -> int:
        """Truncate the partial after its last complete chunk (or all rows); returns the rows kept."""
        keep_rows, keep_bytes, lines, offset = 0, 0, 0, 0
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                lines, offset = lines + 1, offset + len(line)
                if lines % self.chunk_rows == 0 or lines == self.rows:
                    keep_rows, keep_bytes = lines, offset
                if lines == self.rows:
                    break
        os.truncate(self.path, keep_bytes)
        return keep_rows

    def write(self, records: list[dict]) -> None:
        """Append one chunk of finished rows (durably)."""
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.done += len(records)

    def finish(self) -> None:
        """All rows written: move the partial into place and drop the sidecar."""
        if self.done != self.rows:
            raise RuntimeError(f"{self.path}: {self.done} of {self.rows} rows written")
        os.replace(self.path, self.output)
        self.meta_path.unlink(missing_ok=True)
