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


# -- one writer per output ---------------------------------------------------------------------------------------

HOLD = """
import sys, time
from rewardlab.io import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_output_lock_refuses_a_second_writer_naming_the_path_and_pid_and_leaves_nothing(tmp_path):
    from rewardlab.errors import UserError
    from rewardlab.io import lock_path, output_lock

    out = tmp_path / "new" / "run"
    with output_lock(out):
        assert lock_path(out) == tmp_path / "new" / "run.lock"
        for spelling in (out, tmp_path / "new" / ".." / "new" / "run"):  # every spelling shares the lock
            with pytest.raises(UserError) as e, output_lock(spelling, "-o"):
                pass
            assert e.value.lines() == [f"-o {spelling}: another rewardlab process (pid {os.getpid()}) is writing it "
                                       f"(holds {lock_path(out)}); wait for it to end or choose another -o"]
    assert list(tmp_path.iterdir()) == []  # lock file and the parent made for it are gone
    with output_lock(out):  # released: the next run proceeds
        out.mkdir()
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["run"]


def test_a_lock_held_by_another_process_blocks_until_it_is_killed(tmp_path):
    import signal
    import subprocess
    import sys

    from rewardlab.errors import UserError
    from rewardlab.io import lock_path, output_lock

    out = tmp_path / "scores.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=rf"another rewardlab process \(pid {holder.pid}\) is writing it"):
            with output_lock(out):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert lock_path(out).exists()  # a killed holder cannot clean up: its stale lock file must not block
    with output_lock(out):
        out.write_text("ok\n")
    assert [p.name for p in tmp_path.iterdir()] == ["scores.jsonl"]


def test_output_lock_is_skipped_on_non_main_ranks(tmp_path, monkeypatch):
    from rewardlab.io import lock_path, output_lock

    with output_lock(tmp_path / "run"):
        monkeypatch.setenv("RANK", "1")  # rank 0 holds the run's lock; the other ranks write nothing themselves
        with output_lock(tmp_path / "run"):
            assert lock_path(tmp_path / "run").exists()


# -- outputs that are inputs ----------------------------------------------------------------------------------------

def test_check_not_an_input_by_inode_and_by_resolved_path(tmp_path):
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input

    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    os.link(data, tmp_path / "hard.jsonl")
    (tmp_path / "sym.jsonl").symlink_to(data)
    for out in (data, tmp_path / "hard.jsonl", tmp_path / "sym.jsonl", tmp_path / "no" / ".." / "d.jsonl"):
        with pytest.raises(UserError) as e:
            check_not_an_input(out, {"FILE": None, "--data": [tmp_path / "other", data]}, "-o")
        assert e.value.lines() == [f"-o {out}: is the same file as the input --data {data}; choose another -o"]
    check_not_an_input(tmp_path / "new.jsonl", {"--data": data, "--base": "tiny"})  # 'tiny' is no local path
    run = tmp_path / "run"
    run.mkdir()
    (run / "pairs.jsonl").write_text("{}\n")
    check_not_an_input(run, {"--data": run / "pairs.jsonl"})  # kept: the run writes its own files only
    with pytest.raises(UserError, match="contains the input --data .*pairs.jsonl, which --overwrite would delete"):
        check_not_an_input(run, {"--data": run / "pairs.jsonl"}, contains=True)
    with pytest.raises(UserError, match="is the same directory as the input --base"):
        check_not_an_input(tmp_path / "." / "run", {"--base": str(run)})


def test_spec_paths_names_the_existing_paths_of_a_spec(tmp_path, monkeypatch):
    from rewardlab.io import spec_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rm").mkdir()
    (tmp_path / "fn.py").write_text("")
    assert spec_paths("rm") == ["rm"]
    assert spec_paths("ensemble:mean:rm,python:fn.py:score") == ["rm", "fn.py"]
    assert spec_paths("org/model@v1") == [] and spec_paths(None) == []


def test_new_output_dir_needs_overwrite_and_replacing_dir_swaps_it_whole(tmp_path):
    from rewardlab.errors import UserError
    from rewardlab.io import check_new_output_dir, replacing_dir

    out = tmp_path / "m"
    assert check_new_output_dir(out, overwrite=False) == out and not out.exists()
    out.mkdir()
    (out / "old.bin").write_text("old")
    with pytest.raises(UserError, match=f"--output {out}: exists and is not empty; pass --overwrite"):
        check_new_output_dir(out, overwrite=False)
    check_new_output_dir(out, overwrite=True)
    with pytest.raises(RuntimeError), replacing_dir(out) as tmp:
        (tmp / "new.bin").write_text("new")
        raise RuntimeError("crashed while saving")
    assert [p.name for p in out.iterdir()] == ["old.bin"] and [p.name for p in tmp_path.iterdir()] == ["m"]
    with replacing_dir(out) as tmp:
        (tmp / "new.bin").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.bin"] and [p.name for p in tmp_path.iterdir()] == ["m"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask


def test_a_full_disk_is_one_line_naming_the_path_and_no_temp_file_is_left(tmp_path, cli, monkeypatch):
    import errno
    import os

    import rewardlab.io as io

    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "chosen": " bb", "rejected": " c"}\n')
    (tmp_path / "lenmod_full.py").write_text("def length(p, r):\n    return float(len(r))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out" / "s.jsonl"

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))

    monkeypatch.setattr(io.os, "fsync", full)
    code, _, err = cli("score", "python:lenmod_full:length", data, "-o", out)
    assert code == 1 and err.startswith(f"{out}: no space left on the device while writing")
    assert "Traceback" not in err and not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli("score", "python:lenmod_full:length", data, "-o", out)  # room again: it completes
    assert code == 0 and out.read_text().count("\n") == 1


def test_a_full_disk_during_a_train_checkpoint_leaves_no_half_checkpoint_and_the_run_resumes(tmp_path, cli,
                                                                                          pair_rows, monkeypatch):
    """safetensors reports a full disk as SafetensorError("... (os error 28)"): the command line makes it the one
    line naming the file, the half-written checkpoint is removed, and --resume goes on from the previous one."""
    import json

    import safetensors.torch
    from safetensors import SafetensorError

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:32]))
    out = tmp_path / "rm"
    real = safetensors.torch.save_file

    def full_at_step_4(tensors, filename, metadata=None):
        if "step-00000004" in str(filename):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_at_step_4)
    args = ["train", "--data", data, "--base", "tiny", "--output", out, "--batch-size", 4, "--max-steps", 6,
            "--save-every", 2, "--max-length", 32]
    code, _, err = cli(*args)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{out / 'checkpoints' / '.tmp-step-00000004'}/") and "no space left on the device" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002", "tokenizer"]
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    code, out_text, err = cli(*args, "--resume")
    assert code == 0, err
    assert "resumed from" in out_text + err and (out / "model.safetensors").exists()
