"""``benchmarks/gpu_check.sh --dry-run``: the prepared GPU check runs end to end on a CPU (tiny models), so the one
run a lent GPU allows does not fail on a script error. Its table and JSON hold every contender of every task."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--prompts", "4"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    tasks = {(r["model"], r["task"]) for r in rows}
    assert len(tasks) == 6  # 2 model shapes x (score m=2, score m=8, train)
    for model, task in tasks:
        names = {r["contender"] for r in rows if (r["model"], r["task"]) == (model, task)}
        assert {"rewardlab packed", "length-sorted padded"} <= names
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert "| model | task | contender |" in result.stdout
