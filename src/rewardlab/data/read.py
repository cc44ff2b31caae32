"""Read raw rows from data files, one row at a time: JSONL (also ``.gz``), JSON arrays, Parquet, `datasets` dirs.

:func:`read_rows` yields ``(line, value)``: ``value`` is the parsed JSON value or a
:class:`~rewardlab.data.validate.RowError` for that row; problems of the file as a whole raise
:class:`~rewardlab.errors.UserError`. ``line`` is the 1-based line of a JSONL file and the 1-based row index of a
JSON array, a Parquet file or a `datasets` directory. Facts this module relies on:

- A JSONL line is read with ``readline(max_line_bytes + 1)``, so an over-long line is never held whole (a 100 MB line
  without newline used to cost 236 MB RSS); its rest is skipped in 1 MiB chunks and only its length is kept.
- A UTF-8 byte-order mark (``EF BB BF``) at the start of a file is dropped, as ``utf-8-sig`` decoding does.
- ``json.loads`` raises RecursionError on deeply nested values (10k levels) and ValueError on integers longer than
  ``sys.get_int_max_str_digits()`` (4300 by default); integers go through a hook that turns over-long ones into
  :class:`~rewardlab.data.validate.HugeInt`, so the validator names the field that holds one.
- A ``.json`` file whose first non-blank byte is ``[`` is one JSON array of rows (read whole); any other ``.json``
  file is JSONL (``Dataset.to_json`` writes JSON lines), unless its first line is a lone ``{`` and the whole file
  is one object (pretty-printed, ``{"data": [...]}``): that is refused as a whole. ``.gz`` files are gunzipped.
- Parquet is read in record batches, a `datasets` directory row by row (memory-mapped Arrow), so neither is loaded
  whole. A ``DatasetDict`` uses ``split``, else ``train``, else its only split; which one is reported in ``notes``.
- A directory that is not a saved `datasets` directory is a folder of data files as a hub dataset repo lays them out
  (a ``git clone``, or a snapshot), read with ``datasets.load_dataset(DIR)``: its card's ``configs`` or its file
  names give the splits. A hub dataset id (``org/name[@revision]``, not a local path) is its snapshot in the HF
  cache, downloaded when missing (:mod:`rewardlab.hub`); rows are numbered within the split.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from rewardlab.data.validate import HugeInt, RowError
from rewardlab.errors import UserError

BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def _parse_int(digits: str) -> int | HugeInt:
    try:
        return int(digits)
    except ValueError:  # over sys.get_int_max_str_digits()
        return HugeInt(digits)


def parse_json(text: str) -> Any:
    """``json.loads`` that raises RowError (never RecursionError / a bare ValueError) and keeps huge ints as HugeInt."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise RowError(json_error_message(e)) from None
    except RecursionError:
        raise RowError("JSON nested too deeply (Python's parser stops at about 1000 levels)") from None


def json_error_message(e: json.JSONDecodeError) -> str:
    """Describe a JSON syntax error; json's own messages may end in "at" ("Unterminated string starting at")."""
    at = "" if e.msg.endswith(" at") else " at"
    return f"truncated or invalid JSON: {e.msg}{at} column {e.colno}"


def _opener(path: Path) -> tuple[Callable[[], IO[bytes]], str]:
    """How to open ``path`` as bytes, and its name without a ``.gz`` suffix."""
    if path.name.endswith(".gz"):
        return (lambda: gzip.open(path, "rb")), path.name[:-3]
    return (lambda: open(path, "rb")), path.name


def data_exists(path: str | Path) -> bool:
    """Whether ``path`` names data: a local file or directory, or a hub dataset id (:mod:`rewardlab.hub`)."""
    from rewardlab.hub import is_hub_dataset_id

    return Path(path).exists() or is_hub_dataset_id(str(path))


def resolve_data_path(path: str | Path) -> Path:
    """``path`` itself, or the local snapshot of the hub dataset it names (downloaded if needed)."""
    from rewardlab.hub import hub_snapshot, is_hub_dataset_id

    p = Path(path)
    return hub_snapshot(str(path), repo_type="dataset") if not p.exists() and is_hub_dataset_id(str(path)) else p


def read_rows(path: Path, max_line_bytes: int, split: str | None = None,
              notes: list[str] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, parsed_value_or_RowError)`` for every non-blank row of ``path`` (see the module docstring)."""
    path = resolve_data_path(path)
    if path.is_dir():
        yield from _dataset_rows(path, split, notes)
        return
    if split is not None:
        raise UserError(f"{path}:1: --split {split} given, but this file has no splits (only a saved DatasetDict has)")
    if path.name.endswith(".parquet"):
        yield from _parquet_rows(path)
        return
    if path.name.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
        raise UserError(f"{path}:1: CSV/TSV is not a supported format: convert it to JSON lines or Parquet (e.g. "
                        f"pandas.read_csv(...).to_json('data.jsonl', orient='records', lines=True)), or load it "
                        "with `datasets` and save_to_disk")
    open_bytes, name = _opener(path)
    if name.endswith(".json") and _starts_with_bracket(path, open_bytes):
        yield from _json_array_rows(path, open_bytes)
        return
    if name.endswith(".json"):
        _refuse_one_object(path, open_bytes)
    with open_bytes() as f:
        yield from _jsonl_rows(path, f, max_line_bytes)


def _read(path: Path, line: int, read: Callable[[], bytes]) -> bytes:
    try:
        return read()
    except _GZIP_ERRORS as e:
        raise UserError(f"{path}:{line}: cannot read the file ({type(e).__name__}: {e})") from None


def _starts_with_bracket(path: Path, open_bytes: Callable[[], IO[bytes]]) -> bool:
    with open_bytes() as f:
        head = _read(path, 1, lambda: f.read(4096))
        while head and not head.removeprefix(BOM).lstrip():
            head = _read(path, 1, lambda: f.read(4096))  # a file that starts with many blank bytes
            if not head:
                return False
    return head.removeprefix(BOM).lstrip().startswith(b"[")


def _refuse_one_object(path: Path, open_bytes: Callable[[], IO[bytes]]) -> None:
    """A ``.json`` file whose first line is a lone ``{`` and whose whole text is one object (pretty-printed, or rows
    wrapped as ``{"data": [...]}``) is refused as a whole, saying so, instead of one error per line."""
    with open_bytes() as f:
        first = _read(path, 1, lambda: f.readline(_CHUNK)).removeprefix(BOM)
    if first.strip() != b"{":  # JSON lines (or a broken first line, reported as such): never read whole
        return
    with open_bytes() as f:
        data = _read(path, 1, f.read).removeprefix(BOM)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # not one document either: the JSONL reader reports each line
    if not isinstance(doc, dict):
        return
    keys = ", ".join(repr(k) for k in list(doc)[:5]) + (", ..." if len(doc) > 5 else "")
    rows = [k for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    hint = (f"; its rows seem to be under {rows[0]!r}: write them one per line (e.g. jq -c '.{rows[0]}[]')"
            if len(rows) == 1 else "")
    raise UserError(f"{path}:1: this JSON file is one object (keys {keys}), not a list of rows or one row per "
                    f"line{hint}")


def _jsonl_rows(path: Path, f: IO[bytes], max_line_bytes: int) -> Iterator[tuple[int, Any]]:
    line = 0
    while True:
        raw = _read(path, line + 1, lambda: f.readline(max_line_bytes + 1))
        if not raw:
            return
        line += 1
        if line == 1:
            raw = raw.removeprefix(BOM)
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            size = len(raw)
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line without keeping it
                raw = _read(path, line, lambda: f.readline(_CHUNK))
                size += len(raw)
            size -= len(raw) - len(raw.rstrip(b"\r\n"))
            yield line, RowError(f"line is {size} bytes, over the limit of {max_line_bytes}")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield line, RowError(f"invalid UTF-8 at byte {e.start}")
            continue
        if not text.strip():
            continue
        try:
            yield line, parse_json(text.rstrip("\r\n"))
        except RowError as e:
            yield line, e


def _json_array_rows(path: Path, open_bytes: Callable[[], IO[bytes]]) -> Iterator[tuple[int, Any]]:
    with open_bytes() as f:
        data = _read(path, 1, f.read).removeprefix(BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path}:{line}: invalid UTF-8 at byte {e.start}") from None
    del data
    try:
        rows = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: {json_error_message(e)}") from None
    except RecursionError:
        raise UserError(f"{path}:1: JSON nested too deeply (Python's parser stops at about 1000 levels)") from None
    if not isinstance(rows, list):
        raise UserError(f"{path}:1: a JSON file must hold a list of rows (or one row per line), got "
                        f"{type(rows).__name__}")
    yield from enumerate(rows, start=1)


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    line = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise UserError(f"{path}:1: cannot read Parquet file ({e})") from None
    while True:
        try:
            batch = next(batches, None)
        except Exception as e:
            raise UserError(f"{path}:{line + 1}: cannot read Parquet file ({e})") from None
        if batch is None:
            return
        for row in batch.to_pylist():
            line += 1
            yield line, row


def _dataset_rows(path: Path, split: str | None, notes: list[str] | None) -> Iterator[tuple[int, Any]]:
    import datasets

    saved = any((path / f).exists() for f in ("dataset_dict.json", "state.json", "dataset_info.json"))
    try:
        ds = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    except Exception as e:
        kind = "a saved `datasets` directory" if saved else "a folder of data files `datasets.load_dataset` reads"
        raise UserError(f"{path}:1: cannot read it as {kind} ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        names = ", ".join(ds)
        if split is None:
            if "train" not in ds and len(ds) != 1:
                raise UserError(f"{path}:1: DatasetDict without a 'train' split: choose one of {names} with --split")
            split = "train" if "train" in ds else next(iter(ds))
            if notes is not None:
                notes.append(f"{path}: DatasetDict with splits {names}: using split '{split}' (choose with --split)")
        elif split not in ds:
            raise UserError(f"{path}:1: no split '{split}' in this DatasetDict (splits: {names})")
        elif notes is not None:
            notes.append(f"{path}: using split '{split}'")
        ds = ds[split]
    elif split is not None:
        raise UserError(f"{path}:1: --split {split} given, but this is a single Dataset, not a DatasetDict")
    yield from enumerate(ds, start=1)
