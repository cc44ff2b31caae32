"""`rewardlab score`: output checked first, resumable partial output (a SIGKILLed run resumes to the same file)."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.errors import UserError
from rewardlab.rewards.partial import PartialOutput

CLI = [sys.executable, "-m", "rewardlab.cli"]
WORDS = "the cat dog sat on a mat big small red blue good bad".split()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny reward checkpoint (two, with different seeds) and 3000 pairs with varied lengths."""
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer

    d = tmp_path_factory.mktemp("score")
    rng = random.Random(0)

    def s(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    rows = [{"prompt": s(8), "chosen": s(rng.randint(5, 60)), "rejected": s(rng.randint(5, 60)), "id": str(i)}
            for i in range(3000)]
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:300]))
    tok = train_tiny_tokenizer([r["chosen"] for r in rows[:200]], vocab_size=128)
    for seed in (0, 1):
        save_reward_model(tiny_reward_model(tok, seed=seed, n_layer=1, n_embd=32), tok, d / f"rm{seed}",
                          manifest={"max_length": 128})
    save_reward_model(tiny_reward_model(tok, seed=2, n_layer=1, n_embd=32, num_outputs=2), tok, d / "k2",
                      manifest={"max_length": 128})
    return d


def score(*args: str):
    return CliRunner().invoke(app, ["score", *args])


def test_sigkill_mid_way_then_rerun_gives_the_uninterrupted_file(world, tmp_path):
    args = [str(world / "rm0"), str(world / "pairs.jsonl"), "--chunk-rows", "100", "--batch-size", "16"]
    ref = tmp_path / "ref.jsonl"
    assert score(*args, "-o", str(ref)).exit_code == 0
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    proc = subprocess.Popen(CLI + ["score", *args, "-o", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > 0:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run must be killed mid-way"
    written = partial.read_bytes().count(b"\n")
    assert 0 < written < 3000
    again = subprocess.run(CLI + ["score", *args, "-o", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    resumed = int(again.stdout.split("resuming ")[1].split(": ")[1].split(" of ")[0])
    assert resumed >= 100 and resumed % 100 == 0
    assert out.read_bytes() == ref.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "ref.jsonl"]  # no partial, no .tmp left


def test_output_directory_exits_2_before_any_work(world, tmp_path):
    proc = subprocess.run(CLI + ["score", str(tmp_path / "no-such-reward"), str(world / "pairs.jsonl"), "-o",
                                 str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"--output {tmp_path}: is a directory, expected a file path"


def test_batch_size_and_chunk_rows_must_be_positive(world, tmp_path):
    res = score(str(world / "rm0"), str(world / "pairs.jsonl"), "-o", str(tmp_path / "s.jsonl"), "--batch-size",
                "0", "--chunk-rows", "0")
    assert isinstance(res.exception, UserError)
    assert res.exception.lines() == ["--batch-size must be >= 1, got 0", "--chunk-rows must be >= 1, got 0"]
    assert list(tmp_path.iterdir()) == []


def test_partial_of_another_reward_is_not_resumed(world, tmp_path):
    data = world / "small.jsonl"
    first = tmp_path / "first.jsonl"
    assert score(str(world / "rm1"), str(data), "-o", str(first), "--chunk-rows", "50").exit_code == 0
    # a partial left by the other reward (rm1): scoring rm0 must not reuse its rows
    out = tmp_path / "s.jsonl"
    stale = PartialOutput(out, data, 300, 50, {"reward": "rm1"})
    stale.open()
    stale.write([json.loads(x) for x in first.read_text().splitlines()[:50]])
    res = score(str(world / "rm0"), str(data), "-o", str(out), "--chunk-rows", "50")
    assert res.exit_code == 0 and "resuming" not in res.output
    ref = tmp_path / "ref.jsonl"
    assert score(str(world / "rm0"), str(data), "-o", str(ref), "--chunk-rows", "50").exit_code == 0
    assert out.read_bytes() == ref.read_bytes() != first.read_bytes()


def test_partial_output_resumes_at_its_last_complete_chunk(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("x\n")
    out = tmp_path / "o.jsonl"
    recs = [{"i": i} for i in range(10)]
    p = PartialOutput(out, data, rows=10, chunk_rows=4, settings={"reward": "a"})
    assert p.open() == 0
    p.write(recs[:4])
    p.write(recs[4:8])
    with open(p.path, "a") as f:
        f.write('{"i": 8}\n{"i": 9')  # the next chunk, half-written when the process died
    again = PartialOutput(out, data, rows=10, chunk_rows=4, settings={"reward": "a"})
    assert again.open() == 8 and p.path.read_text().count("\n") == 8
    again.write(recs[8:])
    again.finish()
    assert [json.loads(x) for x in out.read_text().splitlines()] == recs
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.jsonl", "o.jsonl"]
    other = PartialOutput(tmp_path / "b.jsonl", data, rows=10, chunk_rows=4, settings={"reward": "a"})
    other.open()
    other.write(recs[:4])
    assert PartialOutput(tmp_path / "b.jsonl", data, 10, 4, {"reward": "b"}).open() == 0  # another reward
    other.open()
    other.write(recs[:4])
    assert PartialOutput(tmp_path / "b.jsonl", data, 10, 4, {"reward": "a"}).open(resume=False) == 0
    data.write_text("y\n")  # another input
    other.open()
    assert PartialOutput(tmp_path / "b.jsonl", data, 10, 4, {"reward": "a"}).open() == 0


FLAKY = """
import os


def fn(prompt, response):
    if os.environ.get("REWARDLAB_TEST_BOOM") and response == "boom":
        raise RuntimeError("boom")
    return float(len(response))
"""


def test_a_crashed_run_resumes_and_restart_starts_over(tmp_path, monkeypatch):
    (tmp_path / "flaky_reward.py").write_text(FLAKY)
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"prompt": "p", "chosen": "a" * (1 + i % 7), "rejected": "boom" if i == 250 else "b"} for i in range(400)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["python:flaky_reward:fn", str(data), "-o", str(tmp_path / "s.jsonl"), "--chunk-rows", "100"]
    crashed = CliRunner().invoke(app, ["score", *args], env={"REWARDLAB_TEST_BOOM": "1"})
    assert isinstance(crashed.exception, RuntimeError)
    assert (tmp_path / "s.jsonl.partial").read_text().count("\n") == 200  # chunks 0 and 1 survived
    res = score(*args)
    assert res.exit_code == 0 and "200 of 400 rows already scored" in res.output
    got = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert got == [{"chosen_score": float(len(r["chosen"])), "rejected_score": float(len(r["rejected"]))}
                   for r in rows]
    CliRunner().invoke(app, ["score", *args], env={"REWARDLAB_TEST_BOOM": "1"})
    res = score(*args, "--restart")
    assert res.exit_code == 0 and "resuming" not in res.output
    assert [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()] == got


def test_device_and_dtype_options(world, tmp_path):
    data = world / "small.jsonl"
    fp32, bf16 = tmp_path / "fp32.jsonl", tmp_path / "bf16.jsonl"
    assert score(str(world / "rm0"), str(data), "-o", str(fp32), "--device", "cpu", "--dtype", "fp32").exit_code == 0
    assert score(str(world / "rm0"), str(data), "-o", str(bf16), "--device", "cpu", "--dtype", "bf16").exit_code == 0
    a = [json.loads(x)["chosen_score"] for x in fp32.read_text().splitlines()]
    b = [json.loads(x)["chosen_score"] for x in bf16.read_text().splitlines()]
    assert a != b and a == pytest.approx(b, abs=0.05)  # bf16 weights: rounded, close
    bad = score(str(world / "rm0"), str(data), "-o", str(tmp_path / "x.jsonl"), "--dtype", "int8")
    assert isinstance(bad.exception, UserError) and "--dtype 'int8'" in str(bad.exception)
    res = CliRunner().invoke(app, ["inspect", str(world / "k2"), str(data), "--device", "cpu", "--dtype", "fp32",
                                   "-o", str(tmp_path / "i.jsonl"), "--show", "1"])
    assert res.exit_code == 0, (res.output, res.exception)
    first = json.loads((tmp_path / "i.jsonl").read_text().splitlines()[0])
    assert set(first["attributes"]) == {"out0", "out1"}
    bad = CliRunner().invoke(app, ["inspect", str(world / "k2"), str(data), "-o", str(tmp_path)])
    assert isinstance(bad.exception, UserError) and "is a directory" in str(bad.exception)


def test_split_picks_the_datasetdict_split(world, tmp_path, cli):
    import datasets

    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "id": f"r{i}"} for i in range(5)]
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                          "test": datasets.Dataset.from_list(rows[3:])}).save_to_disk(dd)
    code, _, err = cli("score", world / "rm0", dd, "-o", tmp_path / "s.jsonl", "--split", "test")
    assert code == 0 and f"{dd}: using split 'test'" in err
    assert [json.loads(x)["id"] for x in (tmp_path / "s.jsonl").read_text().splitlines()] == ["r3", "r4"]
    code, _, err = cli("score", world / "rm0", dd, "-o", tmp_path / "t.jsonl", "--split", "dev")
    assert code == 2 and err == f"{dd}:1: no split 'dev' in this DatasetDict (splits: train, test)\n"
    code, _, err = cli("inspect", world / "k2", dd, "-o", tmp_path / "i.jsonl", "--split", "test", "--show", "1")
    assert code == 0 and f"{dd}: using split 'test'" in err
    inspected = [json.loads(x) for x in (tmp_path / "i.jsonl").read_text().splitlines()]
    assert len(inspected) == 4  # chosen and rejected of the 2 test rows
