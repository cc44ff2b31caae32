import os
import stat

import pytest

from rewardlab.io import write_json_atomic, write_text_atomic


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out" / "a.json"
    write_json_atomic(target, {"x": 1})
    write_text_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})  # serialization fails before anything is written
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_open_atomic_streams_and_a_failure_mid_write_leaves_the_old_file(tmp_path):
    from rewardlab.io import open_atomic

    target = tmp_path / "a.bin"
    with open_atomic(target) as f:
        f.write(b"one ")
        f.write(b"two")
    assert target.read_bytes() == b"one two"
    with pytest.raises(RuntimeError), open_atomic(target) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-way")
    assert target.read_bytes() == b"one two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
