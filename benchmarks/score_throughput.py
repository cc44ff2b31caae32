"""Scoring throughput, side by side in one run: ModelReward vs a bare batched forward.

- equal lengths: ModelReward.score_ids vs a bare ``model(ids, mask)`` loop over the same ids (target >= 0.9x);
- skewed lengths: ModelReward's length-sorted batches vs the same bare loop in input order (target >= 2x).
Prints tokens/s (real, unpadded tokens) and ratios; median of interleaved rounds.

    python benchmarks/score_throughput.py [--items 2000] [--batch-size 32] [--layers 4] [--embd 128]
"""

from __future__ import annotations

import argparse

import torch
from _common import interleaved_medians, make_pairs, tokenizer_for

from rewardlab.data.batching import pad_batch
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.rewards.model import ModelReward


@torch.no_grad()
def bare(model, seqs, batch_size: int, pad_id: int) -> None:
    for i in range(0, len(seqs), batch_size):
        ids, mask = pad_batch(seqs[i : i + batch_size], pad_id)
        model(ids, mask)


def run_set(skewed: bool, args) -> None:
    pairs = make_pairs(args.items // 2, skewed=skewed)
    tok = tokenizer_for(pairs)
    model = tiny_reward_model(tok, seed=0, n_layer=args.layers, n_embd=args.embd, n_positions=1024).eval()
    reward = ModelReward(model, tok, max_length=1024, batch_size=args.batch_size)
    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    responses = [r for p in pairs for r in (p.chosen, p.rejected)]
    seqs = reward.encode(prompts, responses)
    tokens = sum(map(len, seqs))
    methods = {
        "ModelReward.score_ids (length-sorted)": lambda: reward.score_ids(seqs),
        "bare forward, input order": lambda: bare(model, seqs, args.batch_size, tok.pad_token_id),
        "ModelReward.score incl. tokenization": lambda: reward.score(prompts, responses),
    }
    rate = {k: tokens / v for k, v in interleaved_medians(methods, args.rounds).items()}
    ours = rate["ModelReward.score_ids (length-sorted)"]
    print(f"\n[{'skewed' if skewed else 'equal'} lengths: {len(seqs)} items, {tokens} tokens]")
    for k, v in rate.items():
        print(f"  {k:40s} {v:10.0f} tokens/s   ModelReward/this = {ours / v:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, GPT-2 {args.layers} layers x "
          f"{args.embd}, median of {args.rounds} interleaved rounds")
    for skewed in (False, True):
        run_set(skewed, args)


if __name__ == "__main__":
    main()
