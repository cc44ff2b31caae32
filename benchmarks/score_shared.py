"""Scoring hh-shaped data with a real decoder RM, side by side in one run, every contender on the same token ids:

- rewardlab: ``reward.score_ids`` — prompt-shared, packed rows (:mod:`rewardlab.models.packing`);
- bare transformers, **length-sorted**: the batches a competent user writes (sort by length, batch 32, pad, one
  ``*ForSequenceClassification`` forward);
- when vLLM is importable (run this script from the vLLM venv, ``make test-vllm`` builds one, to include them):
  rewardlab's ``vllm:DIR`` reward (:mod:`rewardlab.rewards.vllm`: vLLM's pooling runner behind rewardlab's
  interface) and vLLM's own ``classify`` on the same engine (what the wrapper costs). The engine runs in this process
  (:mod:`rewardlab.models.vllm_runtime`: no engine process polls beside torch, no thread pinning), so every
  contender is interleaved in the same rounds.

Two workloads on hh-rlhf-shaped prompts (multi-turn, median ~93 prompt tokens with the SmolLM2 tokenizer) from
``_common.make_hh_pairs``: pairs (chosen and rejected of a prompt, m = 2) and m = 8 sampled responses per prompt (the
shape of reward variance, best-of-n and GRPO groups). Throughput counts the tokens of the sequences as each is
scored on its own (what separate encoding computes), so sharing shows as speed. Median of interleaved rounds.

    python benchmarks/score_shared.py [--model smollm2] [--prompts 48] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _common import interleaved_medians, make_hh_pairs, text
from score_real import classifier_dir

from rewardlab.data.batching import length_sorted_batches, pad_batch
from rewardlab.models.engines import vllm_installed
from rewardlab.models.packing import plan_rows


def workloads(n_prompts: int, seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    import random

    pairs = make_hh_pairs(n_prompts, seed)
    rng = random.Random(seed + 1)
    m8 = [(p.prompt, " " + text(rng, max(1, int(rng.lognormvariate(3.4, 0.7))))) for p in pairs for _ in range(8)]
    return {"pairs (m = 2)": ([p.prompt for p in pairs for _ in (0, 1)],
                              [r for p in pairs for r in (p.chosen, p.rejected)]),
            "m = 8 per prompt": ([p for p, _ in m8], [r for _, r in m8])}


def classify(reward, seqs):
    """vLLM's own ``classify`` of the token ids on the engine of a ``vllm:`` reward (raw logits)."""
    from vllm import PoolingParams
    from vllm.inputs import TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=list(map(int, s))) for s in seqs]
    return reward.vllm.llm.classify(prompts, pooling_params=PoolingParams(use_activation=False), use_tqdm=False)


def cold(reward, run):
    """``run`` with vLLM's prefix cache emptied first: it keeps the previous round's prefixes otherwise."""
    return lambda: (reward.vllm.llm.reset_prefix_cache(), run())


OURS = "rewardlab score (prompt-shared, packed)"
OURS_VLLM = "rewardlab score vllm:DIR"
VLLM = "vLLM classify, same engine"


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2", help="a packaged model name (smollm2) or a decoder classifier dir")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification

    from rewardlab.rewards.registry import load_reward

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.model) if Path(args.model).is_dir() else classifier_dir(args.model, Path(tmp))
        reward = load_reward(str(path), device="cpu")
        hf = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="sdpa").eval()
        on_vllm = load_reward(f"vllm:{path}", device="cpu") if vllm_installed() else None
        pad = reward.pad_id
        print(f"{args.model}: torch threads {torch.get_num_threads()}, batch {args.batch_size}, median of "
              f"{args.rounds} interleaved rounds; rewardlab packs: {reward.packing}; vLLM: "
              f"{'in this process' if on_vllm else 'not installed'}")
        rates: dict[str, dict[str, float]] = {}
        for name, (prompts, responses) in workloads(args.prompts).items():
            seqs = reward.encode(prompts, responses)
            tokens = sum(map(len, seqs))

            def bare(seqs=seqs):
                for b in length_sorted_batches([len(s) for s in seqs], args.batch_size):
                    ids, mask = pad_batch([seqs[i] for i in b], pad)
                    hf(input_ids=ids, attention_mask=mask)

            methods = {OURS: lambda seqs=seqs: reward.score_ids(seqs), "bare transformers, length-sorted": bare}
            if on_vllm is not None:
                methods[OURS_VLLM] = cold(on_vllm, lambda seqs=seqs: on_vllm.score_ids(seqs))
                methods[VLLM] = cold(on_vllm, lambda seqs=seqs: classify(on_vllm, seqs))
            rates[name] = {k: tokens / v for k, v in interleaved_medians(methods, args.rounds).items()}
            check = reward.score_ids(seqs[:64])
            ids, mask = pad_batch(seqs[:64], pad)
            ref = hf(input_ids=ids, attention_mask=mask).logits[:, 0]  # right-padded: transformers pools by pad id
            agree = f", vllm: {(on_vllm.score_ids(seqs[:64]) - ref).abs().max().item():.1e}" if on_vllm else ""
            shared = sum(p + sum(len(seqs[i]) - p for i in m) for row in plan_rows(seqs) for p, m in row)
            print(f"[{name}: {len(seqs)} sequences, {tokens} tokens scored separately, {shared} with prompts shared "
                  f"(the most sharing can gain: {tokens / shared:.2f}x); max |rewardlab − transformers| on 64 = "
                  f"{(check - ref).abs().max().item():.1e}{agree}]")
        for name, rate in rates.items():
            print(f"\n[{name}]")
            for k, v in rate.items():
                print(f"  {k:42s} {v:8.0f} tokens/s   rewardlab/this = {rate[OURS] / v:5.2f}x")


if __name__ == "__main__":
    main()
