"""Time one RLOO step by phase: generation, scoring, log-probs (policy + reference), backward + optimizer step.

    .venv/bin/python benchmarks/rloo_step.py [--prompts 16] [--k 4] [--max-new-tokens 32] [--layers 2] [--dim 64]
        [--device cpu] [--dtype fp32]

Uses a tiny GPT-2 policy and a tiny GPT-2 reward model (ModelReward) on CPU, or any device with --device.
Each phase is the same code the loop in ``rewardlab/optimize/rloo.py`` runs, with its precision handling (fp32
master weights, forwards under autocast in --dtype, the reference stored in it); timings are the median of
--repeats steps after one warm-up step. Prints the breakdown and tokens/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from rewardlab.models.backbone import disable_dropout
from rewardlab.models.device import resolve_device, resolve_dtype
from rewardlab.models.generation import sample, sequence_kl, sequence_logprobs
from rewardlab.models.tiny import tiny_causal_lm, tiny_reward_model, train_tiny_tokenizer
from rewardlab.optimize.common import autocast, frozen_copy
from rewardlab.optimize.losses import kl_penalized_rewards, reinforce_loss, rloo_advantages
from rewardlab.rewards.model import ModelReward

WORDS = "the cat dog sat ran on a mat big small red blue good bad answer question please help me".split()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", help="forward precision (auto: as rewardlab optimize --dtype auto)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    dtype = resolve_dtype(a.dtype, device)
    a.device = str(device)
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) for _ in range(400)]
    tok = train_tiny_tokenizer(corpus, vocab_size=256)
    policy = tiny_causal_lm(tok, n_layer=a.layers, n_embd=a.dim).to(a.device)
    disable_dropout(policy)
    ref = frozen_copy(policy, dtype)
    reward = ModelReward(tiny_reward_model(tok, n_layer=a.layers, n_embd=a.dim).to(a.device), tok)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-5)
    prompts = corpus[: a.prompts]
    times: dict[str, list[float]] = {k: [] for k in ("generation", "scoring", "logprobs", "backward+step")}
    tokens = []

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    for rep in range(a.repeats + 1):
        t = [time.perf_counter()]
        with autocast(device, dtype):
            ro = sample(policy, tok, prompts, a.k, a.max_new_tokens, seed=rep)
        sync()
        t.append(time.perf_counter())
        with torch.no_grad():
            r = reward.score(ro.prompts, ro.responses).float().to(a.device)
        sync()
        t.append(time.perf_counter())
        with torch.no_grad(), autocast(device, dtype):
            old, mask = sequence_logprobs(policy, ro.prompt_ids, ro.response_ids, tok.pad_token_id)
            ref_lp, _ = sequence_logprobs(ref, ro.prompt_ids, ro.response_ids, tok.pad_token_id)
        adv = rloo_advantages(kl_penalized_rewards(r, sequence_kl(old, ref_lp, mask), 0.05).view(-1, a.k)).view(-1)
        sync()
        t.append(time.perf_counter())
        policy.train()
        with autocast(device, dtype):
            logps, m = sequence_logprobs(policy, ro.prompt_ids, ro.response_ids, tok.pad_token_id)
        loss = reinforce_loss(logps, m, adv)
        opt.zero_grad()
        loss.backward()
        opt.step()
        policy.eval()
        sync()
        t.append(time.perf_counter())
        if rep == 0:
            continue  # warm-up
        for name, t0, t1 in zip(times, t[:-1], t[1:], strict=True):
            times[name].append(t1 - t0)
        tokens.append(int(mask.sum()))

    med = {k: statistics.median(v) for k, v in times.items()}
    total = sum(med.values())
    n = a.prompts * a.k
    print(f"one RLOO step: {a.prompts} prompts x k={a.k} = {n} responses, <= {a.max_new_tokens} new tokens, "
          f"GPT-2 {a.layers} layers x {a.dim} dims, {a.device} {dtype}, {a.threads} thread(s); median of {a.repeats}")
    for k, v in med.items():
        print(f"  {k:<14} {v * 1000:8.1f} ms  {100 * v / total:5.1f}%")
    print(f"  {'total':<14} {total * 1000:8.1f} ms   ({statistics.median(tokens) / total:.0f} response tokens/s)")


if __name__ == "__main__":
    main()
