"""Ray scale-out on this box: serving (in-process vs local server vs Ray Serve 1 and 2 replicas) and offline scoring
(`rewardlab score` local vs `--engine ray --num-replicas 2`), one run, ratios rather than absolute numbers.

One GPT-2-config reward model built from config (no hub), saved as a checkpoint; every contender loads it from there.
Every process runs torch with one intra-op thread (``OMP_NUM_THREADS=1``): a replica is one CPU, so 2 replicas can
at best double one process's throughput.

1. Offline scoring of ``--rows`` preference pairs (2 items each) from JSONL: ``rewardlab score CKPT FILE -o OUT`` vs
   ``... --engine ray --num-replicas 2``, both as CLI subprocesses, wall time; the Ray run starts its own local
   cluster (its startup, ~10 s here, is part of what a user waits for and is reported apart). Also the largest
   |ray - local| score difference.
2. Serving ``--items`` items: in-process ``ModelReward.score`` (all at once, length-sorted batches) vs ``--clients``
   concurrent clients (one keep-alive connection each, one item per ``POST /v1/score``, as rollout workers call
   a reward server; the client of :mod:`benchmarks.serve_load`) against ``rewardlab serve CKPT`` (uvicorn, one
   process), and against Ray Serve with 1 and 2 replicas (:class:`rewardlab.serve.ray_serve.RayServer` on a local
   ``ray.init(num_cpus=2)``: Serve's HTTP proxy, then the same app per replica). Best of ``--repeats`` runs each,
   interleaved so machine noise hits all alike. Then the same items again as ``--batch-clients`` clients sending
   ``--per-request`` items per request (how OpenRLHF shards a rollout batch over reward URLs): Ray's per-request
   cost (proxy, router, actor call) is paid once per request, so this shows what replicas add when requests
   are not single items.

Prints items/s and the ratio to in-process. On a 2-core machine the load generator, the proxy and the replicas
share the same 2 cores, so 2 replicas cannot reach 2x here; on a multi-core or multi-node cluster they can.

    .venv/bin/python benchmarks/ray_bench.py            # defaults: 10k pairs (20k items), 512 items served, 32 clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # before torch: every process (server, replicas, actors) inherits it

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import WORDS, _post, build, free_port, start_server  # noqa: E402
from serve_load import load as client_load  # noqa: E402


async def batched_load(url: str, prompts, responses, clients: int, per_request: int) -> tuple[float, list]:
    """Like :func:`serve_load.load`, but each request carries ``per_request`` items (an OpenRLHF-style shard)."""
    host, port = url.split("//")[1].split(":")
    starts = iter(range(0, len(prompts), per_request))
    scores: list = [None] * len(prompts)

    async def client():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in starts:
                items = [{"prompt": p, "response": r} for p, r in zip(prompts[i:i + per_request],
                                                                      responses[i:i + per_request])]
                status, data = await _post(reader, writer, f"{host}:{port}", "/v1/score",
                                           json.dumps({"items": items}).encode())
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
                scores[i:i + len(items)] = json.loads(data)["scores"]
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t0, scores


def write_pairs(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    with path.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": i, "prompt": text(4, 24), "chosen": text(4, 48), "rejected": text(4, 48)}) + "\n")


def run_score(ckpt: Path, data: Path, out: Path, *extra: str) -> float:
    exe = Path(sys.executable).with_name("rewardlab")
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), "score", str(ckpt), str(data), "-o", str(out), "--restart", *extra],
                       capture_output=True, text=True, env=dict(os.environ, RAY_ADDRESS=""))
    if r.returncode != 0:
        raise RuntimeError(f"rewardlab score {' '.join(extra)} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def max_diff(a: Path, b: Path) -> float:
    ra = [json.loads(line) for line in a.read_text().splitlines()]
    rb = [json.loads(line) for line in b.read_text().splitlines()]
    assert [r.get("id") for r in ra] == [r.get("id") for r in rb], "rows differ in order"
    keys = [k for k in ra[0] if k != "id" and isinstance(ra[0][k], float)]
    return max(abs(x[k] - y[k]) for x, y in zip(ra, rb) for k in keys)


def ray_startup_seconds() -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    ray.shutdown()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000, help="preference pairs scored offline (2 items each)")
    ap.add_argument("--items", type=int, default=512, help="items served")
    ap.add_argument("--clients", type=int, default=32, help="clients sending 1 item per request")
    ap.add_argument("--batch-clients", type=int, default=4, help="clients sending --per-request items per request")
    ap.add_argument("--per-request", type=int, default=16)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-score", action="store_true", help="only the serving part")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    print(f"machine: {os.cpu_count()} CPUs (shared with other work: ratios, not absolute numbers); torch "
          f"{torch.__version__}, 1 thread per process; model: GPT-2 config {args.layers} layers x {args.dim}, "
          f"max_length {args.max_length}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "rm"
        reward, prompts, responses = build(args, ckpt)

        if not args.skip_score:
            data = tmp / "pairs.jsonl"
            write_pairs(data, args.rows)
            local_s = run_score(ckpt, data, tmp / "local.jsonl")
            ray_s = run_score(ckpt, data, tmp / "ray.jsonl", "--engine", "ray", "--num-replicas", "2")
            startup = ray_startup_seconds()
            diff = max_diff(tmp / "local.jsonl", tmp / "ray.jsonl")
            print(f"\noffline scoring, {args.rows} pairs ({2 * args.rows} items), wall time of the CLI:")
            print(f"  rewardlab score (local)                       {local_s:7.1f} s   1.00x")
            print(f"  --engine ray --num-replicas 2                 {ray_s:7.1f} s   {local_s / ray_s:.2f}x "
                  f"(Ray startup alone: {startup:.1f} s; without it {local_s / max(ray_s - startup, 1e-9):.2f}x)")
            print(f"  max |ray - local| score: {diff:.2e}", flush=True)

        import ray

        from rewardlab.rewards.registry import load_reward
        from rewardlab.serve.ray_serve import RayServer

        spec = str(ckpt)

        def load():
            return load_reward(spec, device="cpu")

        def in_process() -> float:
            t0 = time.perf_counter()
            reward.score(prompts, responses)
            return time.perf_counter() - t0

        def served(url: str) -> float:
            seconds, _, scores = asyncio.run(client_load(url, prompts, responses, args.clients))
            assert all(s is not None for s in scores)
            return seconds

        def served_batched(url: str) -> float:
            seconds, scores = asyncio.run(batched_load(url, prompts, responses, args.batch_clients,
                                                       args.per_request))
            assert all(s is not None for s in scores)
            return seconds

        def measure(name: str, url: str) -> None:
            results.setdefault(name, []).append(served(url))
            batched.setdefault(name, []).append(served_batched(url))

        expected = reward.score(prompts, responses)
        results: dict[str, list[float]] = {}  # 1 item per request
        batched: dict[str, list[float]] = {}  # --per-request items per request
        port = free_port()
        proc = start_server(ckpt, port, argparse.Namespace(max_wait_ms=5.0, max_batch_items=256,
                                                           max_batch_tokens=16384, prep_workers=1))
        try:
            for _ in range(args.repeats):  # in-process and the local server interleaved
                results.setdefault("in-process ModelReward.score", []).append(in_process())
                measure("rewardlab serve (uvicorn, 1 process)", f"http://127.0.0.1:{port}")
        finally:
            proc.terminate()
            proc.wait(30)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
        try:
            for replicas in (1, 2):
                with RayServer(load, replicas=replicas) as server:
                    served(server.url)  # warm-up: both replicas have loaded and run once
                    _, _, scores = asyncio.run(client_load(server.url, prompts, responses, args.clients))
                    err = (torch.tensor(scores) - expected).abs().max().item()
                    for _ in range(args.repeats):
                        measure(f"Ray Serve, {replicas} replica{'s' * (replicas > 1)}", server.url)
                        results["in-process ModelReward.score"].append(in_process())
                    print(f"  (Ray Serve {replicas}: max |served - offline| = {err:.1e})", flush=True)
        finally:
            ray.shutdown()

    base = args.items / min(results["in-process ModelReward.score"])
    local = args.items / min(results["rewardlab serve (uvicorn, 1 process)"])
    print(f"\nserving {args.items} items, {args.clients} clients x 1 item per POST /v1/score, best of "
          f"{args.repeats}+ runs:")
    for name, times in results.items():
        rate = args.items / min(times)
        print(f"  {name:<40} {rate:8.0f} items/s   {rate / base:.2f}x in-process   {rate / local:.2f}x local server")
    local_b = args.items / min(batched["rewardlab serve (uvicorn, 1 process)"])
    print(f"\nserving the same {args.items} items, {args.batch_clients} clients x {args.per_request} items per POST "
          f"/v1/score:")
    for name, times in batched.items():
        rate = args.items / min(times)
        print(f"  {name:<40} {rate:8.0f} items/s   {rate / base:.2f}x in-process   {rate / local_b:.2f}x local server")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
