"""Peak memory of `rewardlab train` on a ~50 MB JSONL file (tiny model, a few steps), in a subprocess.

Builds the data file once, then runs ``python -m rewardlab.cli train`` on it for each source tree given (default: this
checkout) and prints the child's peak RSS (``ru_maxrss`` of the child's rusage, read with ``os.wait4`` so that
several runs in one go are measured apart — the same number ``resource.getrusage(RUSAGE_CHILDREN)`` gives for a
single child). The same run on the file's first 100 rows is measured too: that is the fixed cost (torch, the model,
accelerate, the optimizer), and the difference is what the data costs.

    python benchmarks/train_memory.py [--mb 50] [--max-steps 3] [--src OLD_CHECKOUT/src --src src]

To compare with an older commit without touching the working tree:
``git archive COMMIT src | tar -x -C /tmp/old`` and pass ``--src /tmp/old/src --src src``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import text

HERE = Path(__file__).resolve().parent


def write_data(path: Path, megabytes: float, seed: int = 0) -> int:
    """JSONL pairs (prompt 20-80 words, responses 30-150 words) until the file holds ``megabytes``; returns rows."""
    rng = random.Random(seed)
    target, rows = int(megabytes * 1e6), 0
    with open(path, "w") as f:
        while f.tell() < target:
            row = {"prompt": text(rng, rng.randint(20, 80)), "chosen": "good " + text(rng, rng.randint(30, 150)),
                   "rejected": "bad " + text(rng, rng.randint(30, 150))}
            f.write(json.dumps(row) + "\n")
            rows += 1
    return rows


def peak_rss_mb(cmd: list[str], src: Path | None) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit code) of ``cmd`` run with ``src`` first on PYTHONPATH."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 2):
        print(out[-3000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, wall, code  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=50.0, help="size of the generated JSONL file")
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--src", type=Path, action="append", help="source tree(s) to measure (default: this checkout)")
    ap.add_argument("--data", type=Path, help="reuse this JSONL file instead of generating one")
    args = ap.parse_args()
    srcs = args.src or [HERE.parent / "src"]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "pairs.jsonl"
        if args.data is None:
            rows = write_data(data, args.mb)
        else:
            rows = sum(1 for _ in open(data))
        size = data.stat().st_size / 1e6
        print(f"data: {data.name}, {size:.1f} MB, {rows} pairs; tiny model, --max-steps {args.max_steps}")
        small = Path(tmp) / "first100.jsonl"
        with open(data) as f:
            small.write_text("".join(line for _, line in zip(range(100), f)))
        for src in srcs:
            rss = {}
            for name, path in (("small", small), ("full", data)):
                out = Path(tmp) / f"run-{name}-{abs(hash(str(src)))}"
                cmd = [sys.executable, "-m", "rewardlab.cli", "train", "--data", str(path), "--output", str(out),
                       "--max-steps", str(args.max_steps), "--batch-size", "16", "--device", "cpu"]
                rss[name], wall, code = peak_rss_mb(cmd, src)
                if code == 2:  # an older tree without --device
                    rss[name], wall, code = peak_rss_mb(cmd[:-2], src)
            status = "ok" if code == 0 else f"exit {code}"
            extra = rss["full"] - rss["small"]
            print(f"  {str(src):30s} peak RSS {rss['full']:6.0f} MB; on 100 rows {rss['small']:5.0f} MB; the data "
                  f"costs {extra:5.0f} MB = {extra / size:4.1f}x the file  ({wall:5.1f} s, {status})")


if __name__ == "__main__":
    main()
