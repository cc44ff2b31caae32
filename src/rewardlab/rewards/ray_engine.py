"""Offline scoring on Ray Data: ``rewardlab score SPEC FILE -o OUT --engine ray [--num-replicas N]
[--num-gpus-per-replica G]``. Same rows, same records, same scores as ``--engine local`` (tested to 1e-6).

One streaming run:

1. FILE is validated by the local reader first (:func:`rewardlab.data.load.load_file`, one pass that keeps no
   rows), so a bad row is the same ``FILE:LINE`` UserError as with the local engine, before Ray starts.
2. Ray Data reads it, read tasks reserving no CPU (:data:`READ_CPUS`): Parquet with :func:`parquet_rows`
   (pyarrow ``iter_batches`` in blocks of ``chunk_rows``; not ``ray.data.read_parquet``, whose file-listing task
   always takes a CPU); JSONL (also ``.gz``) with :func:`json_lines`, a ``FileBasedDatasource`` that streams raw
   lines (split on ``\\n`` only, blank lines and a BOM dropped as the local reader does) in blocks of
   ``chunk_rows``; every line is then parsed by the local reader's own parser. Not ``ray.data.read_json``:
   pyarrow's JSON reader gives each column one type and fails on files the local engine reads (an ``id`` that is
   a number in one row and a string in the next: "Column(/id) changed from number to string"), and ``read_text``
   reads a file whole and splits on ``str.splitlines`` (a raw U+2028 inside a JSON string would cut a row in two).
3. ``map_batches(RewardScorer, compute=ActorPoolStrategy(size=N), num_gpus=G, batch_size=chunk_rows)``: each actor
   builds the reward once from the spec (:func:`rewardlab.rewards.registry.load_reward`) and scores each batch of
   rows with the local engine's :func:`rewardlab.rewards.records.score_rows` -- one ``score`` call per batch, inside
   which a model reward sorts the items by token length into forward passes of ``--batch-size`` items (length
   buckets within each block).
4. The driver iterates the results in input order (``preserve_order``) and streams them into a temp file next to
   OUT: JSONL lines exactly as the local engine writes them, or Parquet when OUT ends in ``.parquet`` (an ``id``
   column, null for rows without one, then the score columns); the file is renamed into place when complete
   (:func:`rewardlab.io.open_atomic`). There is no resume: a killed run starts over.

A reward that is not batch-invariant (:func:`rewardlab.rewards.base.is_batch_invariant`) is refused: Ray groups
rows into calls differently from the local engine, so its scores would differ. JSON-array files and saved
``datasets`` directories are refused too (write JSONL or Parquet). Paths in SPEC and FILE must be readable on
every node of a multi-node cluster (the same path, e.g. a shared filesystem); ``ray.init()`` joins the cluster
named by ``$RAY_ADDRESS``, else starts a local one.

A UserError raised in an actor (a bad spec, a missing file) reaches the driver only as text inside Ray's error;
:func:`remote_user_error` marks it and :func:`user_error_from` turns it back into a UserError (exit 2).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rewardlab.errors import UserError

BLOCK_BYTES = 64 << 20  # a JSONL block is cut after this many bytes even below chunk_rows lines
READ_CPUS = 0  # read tasks reserve no CPU: with N actors on N CPUs a 1-CPU read task never starts (Ray Data waits
# 30 min, then fails "made no progress"); reading lines is cheap next to scoring them
_MARK = "rewardlab-user-error:"


def remote_user_error(e: UserError) -> RuntimeError:
    """An exception to raise in a Ray worker for ``e``: its problems survive as marked JSON in Ray's error text."""
    return RuntimeError(_MARK + json.dumps(e.problems))


def user_error_from(*texts: str) -> UserError | None:
    """The UserError that :func:`remote_user_error` marked in one of ``texts`` (Ray error messages), or None."""
    for text in texts:
        i = text.find(_MARK)
        if i >= 0:
            try:
                problems, _ = json.JSONDecoder().raw_decode(text, i + len(_MARK))
            except ValueError:
                continue
            return UserError(*problems)
    return None


@contextmanager
def ray_session(**init_kwargs: Any) -> Iterator[Any]:
    """``ray`` connected: the running session if there is one, else ``ray.init()`` (``$RAY_ADDRESS`` or a new local
    cluster), shut down on exit."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(include_dashboard=False, **init_kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_batch_invariant(spec: str, reward: Any) -> None:
    from rewardlab.rewards.base import is_batch_invariant

    if not is_batch_invariant(reward):
        raise UserError(f"{spec}: this reward is not batch-invariant (an item's score depends on the other items of "
                        "a call) and --engine ray groups rows into calls differently from --engine local: score it "
                        "with --engine local")


class RewardScorer:
    """The ``map_batches`` callable: one reward per actor; a batch of raw rows in, their JSON records out."""

    def __init__(self, spec: str, load_kwargs: dict[str, Any], batch_size: int, column: str | None,
                 reference: Path | None = None):
        from rewardlab.rewards.ensemble import ready_for_scoring
        from rewardlab.rewards.registry import load_reward

        try:
            reward = load_reward(spec, **load_kwargs)
            ready_for_scoring(reward, spec, reference)  # an ensemble's member stats, as the local engine does
            check_batch_invariant(spec, reward)
        except UserError as e:
            raise remote_user_error(e) from None
        if hasattr(reward, "batch_size"):
            reward.batch_size = batch_size
        self.reward, self.column = reward, column

    def __call__(self, batch) -> dict[str, list[str]]:
        from rewardlab.data.read import parse_json
        from rewardlab.data.validate import parse_row
        from rewardlab.rewards.records import score_rows

        if self.column is not None:  # JSONL: raw lines
            values = [parse_json(text) for text in batch.column(self.column).to_pylist()]
        else:  # Parquet: rows as the local reader sees them (pyarrow to_pylist)
            values = batch.to_pylist()
        rows = [parse_row(v)[1] for v in values]
        return {"record": [json.dumps(r, ensure_ascii=False) for r in score_rows(self.reward, rows)]}


def _lines(f) -> Iterator[bytes]:
    """The lines of a binary stream without their ``\\n`` (read in 1 MiB chunks)."""
    pending: list[bytes] = []
    while chunk := f.read(1 << 20):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending.append(chunk[start:end])
            yield b"".join(pending)
            pending, start = [], end + 1
        pending.append(chunk[start:])
    if any(pending):
        yield b"".join(pending)


def json_lines(path: str, rows_per_block: int):
    """A Ray ``FileBasedDatasource`` yielding the non-blank lines of a JSONL file as a ``line`` column."""
    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    from rewardlab.data.read import BOM

    class JsonLines(FileBasedDatasource):
        def _read_stream(self, f, path: str):
            texts, size = [], 0
            for n, raw in enumerate(_lines(f)):
                text = (raw.removeprefix(BOM) if n == 0 else raw).decode("utf-8").rstrip("\r")
                if not text.strip():
                    continue
                texts.append(text)
                size += len(raw)
                if len(texts) >= rows_per_block or size >= BLOCK_BYTES:
                    yield pa.table({"line": pa.array(texts, pa.large_string())})
                    texts, size = [], 0
            if texts:
                yield pa.table({"line": pa.array(texts, pa.large_string())})

    return JsonLines(path)


def parquet_rows(path: str, rows_per_block: int):
    """A Ray ``FileBasedDatasource`` yielding a Parquet file's rows in blocks of ``rows_per_block`` (pyarrow
    ``iter_batches``, the file's own column types). Not ``ray.data.read_parquet``: from Ray 2.5x it lists files in a
    ``ListFiles`` task that always asks for 1 CPU, and with N actors on N CPUs that task never starts."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from ray.data.datasource import FileBasedDatasource

    class ParquetRows(FileBasedDatasource):
        def _open_input_source(self, filesystem, path: str, **open_args):
            return filesystem.open_input_file(path)  # Parquet needs random access (the footer first)

        def _read_stream(self, f, path: str):
            for batch in pq.ParquetFile(f).iter_batches(batch_size=rows_per_block):
                yield pa.Table.from_batches([batch])

    return ParquetRows(path)


def _read(ray, path: Path, rows_per_block: int):
    """(dataset, raw-line column or None for Parquet); UserError for formats Ray does not read here."""
    from rewardlab.data.read import _opener, _starts_with_bracket

    if path.is_dir():
        raise UserError(f"{path}: --engine ray reads JSONL and Parquet files, not a saved `datasets` directory "
                        "(write it with Dataset.to_json or to_parquet, or use --engine local)")
    if path.name.endswith(".parquet"):
        return ray.data.read_datasource(parquet_rows(str(path), rows_per_block), num_cpus=READ_CPUS), None
    open_bytes, name = _opener(path)
    if name.endswith(".json") and _starts_with_bracket(path, open_bytes):
        raise UserError(f"{path}:1: --engine ray reads JSONL and Parquet files, not a JSON array (write one row "
                        "per line, or use --engine local)")
    return ray.data.read_datasource(json_lines(str(path), rows_per_block), num_cpus=READ_CPUS), "line"


def _write(f, batches: Iterator[list[str]], parquet: bool) -> int:
    """Write record lines to ``f`` as JSONL or Parquet; returns the number of rows."""
    n, writer, schema = 0, None, None
    for lines in batches:
        n += len(lines)
        if not parquet:
            f.write("".join(line + "\n" for line in lines).encode("utf-8"))
            continue
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = [{"id": None} | json.loads(line) for line in lines]
        if writer is None:
            schema = pa.Table.from_pylist(records).schema
            schema = schema.set(schema.get_field_index("id"), pa.field("id", pa.string()))
            writer = pq.ParquetWriter(f, schema)
        writer.write_table(pa.Table.from_pylist(records, schema=schema))
    if writer is not None:
        writer.close()
    return n


def score_on_ray(spec: str, file: Path, output: Path, *, num_replicas: int = 1, num_gpus_per_replica: float = 0.0,
                 batch_size: int = 32, chunk_rows: int = 1024, device: str = "auto", dtype: str = "auto",
                 chat_template: str | None = None, attn_implementation: str | None = None,
                 reference: Path | None = None) -> int:
    """Score every row of ``file`` with ``spec`` on Ray Data into ``output`` (see the module docstring); returns the
    number of rows."""
    from rewardlab.data.load import accept, load_file
    from rewardlab.io import open_atomic

    report = load_file(file, keep_rows=False)
    for line in accept(report):
        print(line, file=sys.stderr)
    load_kwargs = {"device": device, "dtype": dtype, "chat_template": chat_template,
                   "attn_implementation": attn_implementation}
    with ray_session() as ray:
        ctx = ray.data.DataContext.get_current()
        keep_order = ctx.execution_options.preserve_order
        ctx.execution_options.preserve_order = True  # results in input order
        try:
            ds, column = _read(ray, Path(file), chunk_rows)
            scored = ds.map_batches(
                RewardScorer, fn_constructor_kwargs={"spec": spec, "load_kwargs": load_kwargs,
                                                     "batch_size": batch_size, "column": column,
                                                     "reference": reference},
                batch_size=chunk_rows, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=num_replicas),
                num_cpus=1, num_gpus=num_gpus_per_replica)
            batches = (b.column("record").to_pylist()
                       for b in scored.iter_batches(batch_size=None, batch_format="pyarrow"))
            with open_atomic(output) as f:
                n = _write(f, batches, parquet=Path(output).name.endswith(".parquet"))
                if n != report.count:
                    raise UserError(f"{file}: file changed while scoring it ({report.count} valid rows, then {n})")
        except UserError:
            raise
        except Exception as e:
            err = user_error_from(str(e), *(str(c) for c in _causes(e)))
            if err is not None:
                raise err from None
            raise
        finally:
            ctx.execution_options.preserve_order = keep_order
    return n


def _causes(e: BaseException) -> Iterator[BaseException]:
    seen = {id(e)}
    c = e.__cause__ or e.__context__
    while c is not None and id(c) not in seen:
        seen.add(id(c))
        yield c
        c = c.__cause__ or c.__context__
