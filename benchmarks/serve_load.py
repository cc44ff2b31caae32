"""Reward-server throughput: C concurrent HTTP clients vs in-process batched scoring of the same items.

Builds a small GPT-2-config reward model from config (no hub), saves it as a checkpoint, starts the real server with
``rewardlab serve CKPT`` in a subprocess (loopback), then:

1. in-process baseline: ``ModelReward.score(prompts, responses)`` on all N items at once (length-sorted batches of
   ``--batch-size``), the best of ``--repeats`` runs;
2. served: ``--clients`` asyncio clients (one keep-alive HTTP/1.1 connection each) send one item per
   ``POST /v1/score`` request until all N items are scored, the way RLHF rollout workers call a reward server;
   the best of ``--repeats`` runs, interleaved with the baseline's so that both see the same machine load.

Prints items/s for both, the ratio (target >= 0.8), CPU time per item (in-process vs the server process: robust
when the machine is shared), per-request latency p50/p99, the batch sizes the dynamic batcher
achieved (from ``/metrics``), and the largest |served - offline| score difference.

With ``--big-mb M`` it then measures what one big request does to everyone else: the same load again while an
M MB ``/get_reward`` request (40 kB texts, within the per-item limits, so all of it is tokenized) is in flight,
and while an 8 MB single-text request (refused by the per-item byte limit) is; it prints the small requests'
p50/p99 latency in each case and how long the big request took.

    .venv/bin/python benchmarks/serve_load.py            # defaults: 512 items, 64 clients
    .venv/bin/python benchmarks/serve_load.py --big-mb 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

WORDS = ("the cat dog sat ran on a mat big small red blue good bad answer question please help me with this task "
         "now yes no maybe one two three four five because therefore however").split()


def build(args, out_dir: Path):
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer
    from rewardlab.rewards.model import ModelReward

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(2000)]
    tok = train_tiny_tokenizer(corpus, vocab_size=512)
    model = tiny_reward_model(tok, n_layer=args.layers, n_embd=args.dim, n_head=args.heads, n_positions=512)
    save_reward_model(model, tok, out_dir, manifest={"max_length": args.max_length})
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60))) for _ in range(args.items)]
    responses = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 120))) for _ in range(args.items)]
    reward = ModelReward.from_pretrained(out_dir, batch_size=args.batch_size)
    return reward, prompts, responses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: Path, port: int, args) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("rewardlab")
    cmd = [str(exe), "serve", str(ckpt), "--port", str(port), "--log-level", "warning",
           "--max-wait-ms", str(args.max_wait_ms), "--max-batch-items", str(args.max_batch_items),
           "--max-batch-tokens", str(args.max_batch_tokens), "--prep-workers", str(args.prep_workers)]
    env = dict(os.environ, REWARDLAB_TOKEN="")
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


async def _post(reader, writer, host: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive POST on an open connection (a minimal client: the load generator shares the CPUs
    with the server here, and httpx spends ~4 ms of CPU per request, which would be charged to the server)."""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return status, await reader.readexactly(length)


async def load(url: str, prompts, responses, clients: int):
    """Each client (one keep-alive connection) posts the next unscored item alone; returns (s, latencies, scores)."""
    host, port = url.split("//")[1].split(":")
    next_item = iter(range(len(prompts)))
    latencies: list[float] = []
    scores = [None] * len(prompts)

    async def client():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in next_item:
                body = json.dumps({"items": [{"prompt": prompts[i], "response": responses[i]}]}).encode()
                t0 = time.perf_counter()
                status, data = await _post(reader, writer, f"{host}:{port}", "/v1/score", body)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
                scores[i] = json.loads(data)["scores"][0]
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t0, latencies, scores


async def load_during(url: str, big_body: bytes, prompts, responses, clients: int):
    """:func:`load` while one ``big_body`` POST to /get_reward is in flight: (load result, big status, big s)."""
    host, port = url.split("//")[1].split(":")

    async def big():
        reader, writer = await asyncio.open_connection(host, int(port))
        t0 = time.perf_counter()
        try:
            status, _ = await _post(reader, writer, f"{host}:{port}", "/get_reward", big_body)
        finally:
            writer.close()
        return status, time.perf_counter() - t0

    task = asyncio.ensure_future(big())
    await asyncio.sleep(0.2)  # the body is uploaded and being handled
    result = await load(url, prompts, responses, 8)
    status, seconds = await task
    return result, status, seconds


def big_bodies(mb: float) -> tuple[bytes, bytes]:
    """An accepted ``mb`` MB request of 40 kB texts, and an 8 MB single-text request over the per-item limit."""
    rng = random.Random(1)
    piece = " ".join(rng.choice(WORDS) for _ in range(8000))[:40_000]
    accepted = json.dumps({"query": [piece] * max(1, int(mb * 1e6 / len(piece)))}).encode()
    refused = json.dumps({"query": [(piece + " ") * 200]}).encode()
    return accepted, refused


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_stats(metrics: str) -> tuple[float, float, dict[str, int]]:
    """Mean items per batch, mean requests per batch, and the cumulative bucket counts of items per batch."""
    vals = {}
    buckets = {}
    for line in metrics.splitlines():
        if line.startswith("rewardlab_batch_items_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = int(line.split()[-1])
        elif line.startswith(("rewardlab_batch_items_sum", "rewardlab_batch_items_count",
                              "rewardlab_batch_requests_sum", "rewardlab_batch_requests_count",
                              "rewardlab_batch_seconds_sum")):
            vals[line.split()[0]] = float(line.split()[1])
    return (vals["rewardlab_batch_items_sum"] / vals["rewardlab_batch_items_count"],
            vals["rewardlab_batch_requests_sum"] / vals["rewardlab_batch_requests_count"], buckets,
            vals["rewardlab_batch_seconds_sum"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=512)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32, help="in-process ModelReward batch size "
                    "(the server's ModelReward uses its default, 32)")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--max-batch-items", type=int, default=256)
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prep-workers", type=int, default=1, help="server threads tokenizing small requests")
    ap.add_argument("--torch-threads", type=int, default=None, help="intra-op threads on both sides")
    ap.add_argument("--big-mb", type=float, default=0.0, help="also measure small-request latency while a big "
                    "request of this many MB is in flight (0: skip)")
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)  # the server subprocess inherits it

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "rm"
        reward, prompts, responses = build(args, ckpt)
        ids = reward.encode(prompts, responses)
        print(f"model: GPT-2 config {args.layers} layers x {args.dim} dims, max_length {args.max_length}; "
              f"{args.items} items, {np.mean([len(x) for x in ids]):.0f} tokens/item on average; "
              f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")

        port = free_port()
        proc = start_server(ckpt, port, args)
        url = f"http://127.0.0.1:{port}"
        base, runs, base_cpu, server_cpu = [], [], [], []
        try:
            reward.score(prompts[:64], responses[:64])  # warm-up, both sides
            asyncio.run(load(url, prompts[:64], responses[:64], args.clients))
            for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
                c0, t0 = time.process_time(), time.perf_counter()
                offline = reward.score(prompts, responses)
                base.append(time.perf_counter() - t0)
                base_cpu.append(time.process_time() - c0)
                c0 = cpu_seconds(proc.pid)
                runs.append(asyncio.run(load(url, prompts, responses, args.clients)))
                server_cpu.append(cpu_seconds(proc.pid) - c0)
            metrics = httpx.get(f"{url}/metrics").text
            if args.big_mb:
                accepted, refused = big_bodies(args.big_mb)
                n = min(128, args.items)
                quiet = asyncio.run(load(url, prompts[:n], responses[:n], 8))
                busy = [(label, len(body), asyncio.run(load_during(url, body, prompts[:n], responses[:n], 8)))
                        for label, body in (("accepted", accepted), ("refused", refused))]
        finally:
            proc.terminate()
            proc.wait(30)
    base_s = min(base)
    served_s, latencies, scores = min(runs, key=lambda r: r[0])
    mean_items, mean_reqs, buckets, compute_s = batch_stats(metrics)
    diff = float(np.max(np.abs(np.array(scores, dtype=np.float64) - offline.numpy())))
    lat = np.array(latencies) * 1000
    print(f"in-process batched scoring: {args.items / base_s:8.1f} items/s  (best {base_s:.2f} s of "
          f"{', '.join(f'{b:.2f}' for b in base)})")
    print(f"server, {args.clients} clients, 1 item/request: {args.items / served_s:8.1f} items/s  "
          f"(best {served_s:.2f} s of {', '.join(f'{r[0]:.2f}' for r in runs)})")
    print(f"ratio server / in-process: {base_s / served_s:.2f}  (target >= 0.80)")
    print(f"CPU per item: in-process {1000 * min(base_cpu) / args.items:.1f} ms, server process "
          f"{1000 * min(server_cpu) / args.items:.1f} ms (ratio {min(base_cpu) / min(server_cpu):.2f})")
    print(f"request latency: p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")
    print(f"dynamic batches (all runs incl. warm-up): {mean_items:.1f} items and {mean_reqs:.1f} requests per batch "
          f"on average; cumulative items-per-batch buckets {buckets}")
    total = sum(r[0] for r in runs)
    print(f"server time inside the reward (all runs incl. warm-up): {compute_s:.2f} s of {total:.2f} s of load")
    print(f"max |served - offline| score: {diff:.2e}")
    if args.big_mb:
        def pct(lats):
            ms = np.array(lats) * 1000
            return f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms"

        print(f"small requests (8 clients, {n} items), nothing else in flight: {pct(quiet[1])}")
        for label, size, ((_, lats, _), status, seconds) in busy:
            print(f"  while a {size / 1e6:.1f} MB request ({label}: HTTP {status} after {seconds:.2f} s) is in "
                  f"flight: {pct(lats)}")


if __name__ == "__main__":
    main()
