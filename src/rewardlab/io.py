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


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file``, with its I/O failures (a full disk, a read-only file system) raised as the
    ``OSError`` they are, naming ``path``: safetensors reports them as ``SafetensorError("... (os error 28)")``, which
    the command line would print as a traceback."""
    import re

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as e:
        code = re.search(r"os error (\d+)", str(e))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from e


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



def check_new_output_dir(path: str | os.PathLike, overwrite: bool, flag: str = "--output") -> Path:
    """:func:`check_output_dir`, and an existing non-empty directory is refused unless ``overwrite`` (its contents
    would be replaced: a model saved there earlier is not lost silently); creates nothing."""
    from rewardlab.errors import UserError

    path = check_output_dir(path, flag)
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"{flag} {path}: exists and is not empty; pass --overwrite to replace it, or choose a "
                            f"new {flag}")
        if path.resolve() in (Path.cwd().resolve(), Path.home().resolve(), Path("/")):
            raise UserError(f"{flag} {path}: --overwrite would replace the current, home or root directory; give "
                            "the output its own directory")
    return path


@contextmanager
def replacing_dir(path: str | os.PathLike) -> Iterator[Path]:
    """``with replacing_dir(out) as tmp:`` -- write into a fresh directory next to ``out``; when the block ends
    normally it takes the place of ``out`` (whose old contents are then deleted), so ``out`` holds either the old
    or the new output, never a mix; removed if the block raises."""
    import shutil

    path = Path(path).resolve()  # a symlinked output: replace the directory it points to
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")) / path.name
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)  # put the old output back
                old.parent.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

# -- one writer per output ---------------------------------------------------------------------------------------

def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of output ``path``: ``PATH.lock`` next to it, on the resolved path, so that every spelling of
    the output (relative, absolute, through a symlink) shares one lock; outside a directory output, so that
    replacing or clearing the directory never removes a held lock."""
    p = Path(path).resolve()
    return p.with_name(p.name + ".lock") if p.name else p / ".rewardlab.lock"


def _holder_pid(lock_file: Path) -> int | None:
    """The PID the holder wrote into ``lock_file`` (``None``: unknown)."""
    import re

    try:
        text = lock_file.read_text(errors="replace")[:512]
    except OSError:
        return None
    m = re.search(r"^(?:pid=)?(\d+)\s*$", text, re.M)
    return int(m.group(1)) if m else None


def _missing_dirs(path: Path) -> list[Path]:
    """The ancestors of ``path`` (itself included) that do not exist, outermost first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing[::-1]


def _acquire(lock_file: Path, path: Path, flag: str):
    """A held ``filelock.FileLock`` on ``lock_file``, or UserError when another process holds it."""
    from filelock import FileLock, Timeout

    from rewardlab.errors import UserError

    for _ in range(20):
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        before = _holder_pid(lock_file)  # filelock 3.x empties the file when it opens it
        lock = FileLock(str(lock_file), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            pid = _holder_pid(lock_file) or before
            holder = f"another rewardlab process (pid {pid})" if pid else "another rewardlab process"
            raise UserError(f"{flag} {path}: {holder} is writing it (holds {lock_file}); wait for it to end or "
                            f"choose another {flag}") from None
        except FileNotFoundError:  # a parent created above was removed by another run's release: again
            continue
        except OSError as e:
            raise UserError(f"{flag} {path}: cannot create the lock file {lock_file}: {e.strerror or e}") from None
        fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
        if not isinstance(fd, int):
            return lock
        try:
            held, now = os.fstat(fd), os.stat(lock_file)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                if held.st_size == 0:
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return lock
        except FileNotFoundError:
            pass
        lock.release()  # we locked a file its holder unlinked on release: lock the one at the path now
    raise UserError(f"{flag} {path}: cannot lock {lock_file}: it keeps being replaced")


@contextmanager
def output_lock(path: str | os.PathLike, flag: str = "--output") -> Iterator[Path]:
    """``with output_lock(out):`` -- this process is the only rewardlab writer of ``out`` (a file or a run
    directory) until the block ends; a second writer gets UserError (exit 2) naming ``out`` and the holder's PID
    at once instead of interleaving its rows or metrics with ours.

    An exclusive, non-blocking ``flock`` (``filelock``) on :func:`lock_path`: the kernel drops it when the holder
    dies, so the lock file of a killed run blocks nobody. The file (and any parent directory made for it) is
    removed on release. Non-main processes of a distributed run (``RANK`` > 0) take no lock: rank 0 holds it."""
    path = Path(path)
    if os.environ.get("RANK", "0") not in ("", "0"):
        yield path
        return
    lock_file = lock_path(path)
    made = _missing_dirs(lock_file.parent)
    try:
        lock = _acquire(lock_file, path, flag)
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield path
    finally:
        try:
            lock_file.unlink(missing_ok=True)  # while still held: a waiter that opened it re-locks the new one
        except OSError:
            pass
        lock.release()
        _remove_empty(made)


def _remove_empty(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:  # not empty (the output is in it) or gone: keep going outwards only if removed
            break


# -- outputs that are inputs ----------------------------------------------------------------------------------------

def spec_paths(spec: str | None) -> list[str]:
    """The existing local paths named in a spec (``DIR``, ``python:FILE.py:fn``, ``ensemble:A,B``, ...)."""
    import re

    if not spec:
        return []
    parts = [spec, *re.split(r"[:,=]", spec)]
    return list(dict.fromkeys(p for p in parts if p and os.path.lexists(p)))


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)  # hard links and symlinks included
        except OSError:
            pass
    return a.resolve() == b.resolve()


def check_not_an_input(output: str | os.PathLike | None, inputs: dict[str, Any], flag: str = "--output",
                       contains: bool = False) -> None:
    """UserError (before any work) when ``output`` is one of the ``inputs`` (``{flag: path, list of paths or
    None}``): writing it would destroy the data being read, with exit 0. Inputs that do not exist locally (hub
    ids, keywords such as 'tiny') are skipped. ``contains``: the command deletes the output directory's contents
    (``--overwrite``), so an input inside it is refused too."""
    from rewardlab.errors import UserError

    if output is None:
        return
    out = Path(output)
    problems = []
    for name, value in inputs.items():
        for p in value if isinstance(value, (list, tuple)) else [value]:
            if p is None or str(p) == "" or not os.path.lexists(p):
                continue
            p = Path(p)
            if _same(out, p):
                what = "directory" if p.is_dir() else "file"
                problems.append(f"{flag} {output}: is the same {what} as the input {name} {p}; choose another {flag}")
            elif contains and out.resolve() in p.resolve().parents:
                problems.append(f"{flag} {output}: contains the input {name} {p}, which --overwrite would delete")
    if problems:
        raise UserError(*problems)
