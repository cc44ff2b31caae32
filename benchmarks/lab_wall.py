"""Wall time of `rewardlab lab --preset quick` (what `make demo` runs), idle and with the box under load.

"Under load" = ``--hogs`` busy-looping processes running alongside the lab (default 1 on a 2-core box: another job
holding one core). ``--cold`` points REWARDLAB_CACHE at an empty directory, as on a fresh machine (π₀ and the
transformer-level proxies are trained, not read from the cache). Prints one line per run and the claims' verdicts.

    python benchmarks/lab_wall.py --hogs 0 1 --cold
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spin() -> None:
    while True:
        pass


def run_once(hogs: int, cold: bool, extra: list[str]) -> dict:
    procs = [mp.Process(target=_spin, daemon=True) for _ in range(hogs)]
    for p in procs:
        p.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ)
            if cold:
                env["REWARDLAB_CACHE"] = str(Path(tmp) / "cache")
            out = Path(tmp) / "lab"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rewardlab.cli", "lab", "--preset", "quick", "-o", str(out), *extra],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            results = json.loads((out / "results.json").read_text())
    finally:
        for p in procs:
            p.terminate()
    verdicts = [c["verdict"] for c in results["claims"]]
    return {"hogs": hogs, "cold": cold, "wall_s": wall, "timings": results["meta"]["timings"],
            "counts": {v: verdicts.count(v) for v in ("reproduced", "inconclusive", "not reproduced")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hogs", type=int, nargs="+", default=[0, 1], help="busy processes alongside (one run each)")
    ap.add_argument("--cold", action="store_true", help="empty cache (a fresh machine)")
    ap.add_argument("lab_args", nargs="*", help="extra arguments for `rewardlab lab` (after --)")
    args = ap.parse_args()
    print(f"cpus: {os.cpu_count()}  cache: {'cold (empty)' if args.cold else 'warm (default)'}")
    for h in args.hogs:
        r = run_once(h, args.cold, args.lab_args)
        slow = max(r["timings"], key=r["timings"].get)
        print(f"hogs={h}: wall {r['wall_s']:.0f} s (slowest stage {slow}: {r['timings'][slow]:.0f} s); "
              f"verdicts {r['counts']}")


if __name__ == "__main__":
    main()
