"""Training throughput, side by side in one run: rewardlab's trainer vs TRL's RewardTrainer vs a bare PyTorch loop.

Same tiny GPT-2 backbone config, same pairs, same batch size, one epoch each; prints pairs/s and ratios.
- equal-length pairs: everyone should sit at the bare-loop limit (ours vs bare on *identical* batches);
- skewed lengths: length-bucketed batches pay off (ours vs TRL with CPU-appropriate settings, TRL tuned the way a
  careful user would — length-grouped sampling, ``train_sampling_strategy="group_by_length"`` with a precomputed
  ``length`` column (``group_by_length=True`` on older transformers) — and TRL's defaults);
- hh-shaped pairs (long multi-turn prompts, short responses: ``_common.make_hh_pairs``): rewardlab encodes each
  pair's prompt once (prompt-shared rows), every other contender twice.

    python benchmarks/train_throughput.py [--pairs 2000] [--batch-size 16] [--layers 4] [--embd 128]
                                          [--shapes equal,skewed,hh]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from _common import make_hh_pairs, make_pairs, tokenizer_for

from rewardlab.data.batching import pad_batch
from rewardlab.models.backbone import disable_dropout
from rewardlab.models.tiny import tiny_gpt2_config, tiny_reward_model
from rewardlab.train.batches import make_batches
from rewardlab.train.config import TrainConfig
from rewardlab.train.encode import encode_pairs
from rewardlab.train.losses import bt_loss
from rewardlab.train.trainer import train_loop


def ours(tok, data, args, bucket: bool) -> float:
    model = tiny_reward_model(tok, seed=0, n_layer=args.layers, n_embd=args.embd, n_positions=1024).train()
    cfg = TrainConfig(batch_size=args.batch_size, epochs=1, lr=1e-4, max_length=1024, bucket=bucket, log_every=10**9)
    with tempfile.TemporaryDirectory() as out:
        from pathlib import Path

        t = time.perf_counter()
        train_loop(model, tok, data, cfg, None, Path(out), progress=False)
        return len(data) / (time.perf_counter() - t)


def bare(tok, data, args, bucket: bool) -> float:
    """The floor: pad, one forward for chosen+rejected, BT loss, backward, AdamW step. Nothing else."""
    model = tiny_reward_model(tok, seed=0, n_layer=args.layers, n_embd=args.embd, n_positions=1024).train()
    disable_dropout(model)  # as rewardlab's trainer and TRL's RewardTrainer do by default
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = make_batches(data.lengths(), args.batch_size, seed=0, epoch=0, bucket=bucket)
    t = time.perf_counter()
    for idx in batches:
        ids, mask = pad_batch([data.chosen[i] for i in idx] + [data.rejected[i] for i in idx], tok.pad_token_id)
        r = model(ids, mask)[:, 0]
        loss = bt_loss(r[: len(idx)], r[len(idx) :]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return len(data) / (time.perf_counter() - t)


def length_grouping() -> dict:
    """TrainingArguments for length-grouped sampling in the installed transformers (the option was renamed)."""
    import dataclasses

    from trl import RewardConfig

    names = {f.name for f in dataclasses.fields(RewardConfig)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def trl(tok, pairs, args, cpu_settings: bool, group_by_length: bool = False) -> float:
    import datasets
    from transformers import GPT2ForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    torch.manual_seed(0)
    cfg = tiny_gpt2_config(tok, n_layer=args.layers, n_embd=args.embd, n_positions=1024)
    cfg.num_labels = 1
    model = GPT2ForSequenceClassification(cfg)
    rows = [{"chosen": p.prompt + " " + p.chosen, "rejected": p.prompt + " " + p.rejected} for p in pairs]
    extra = dict(bf16=False, gradient_checkpointing=False) if cpu_settings else {}
    if group_by_length:  # the sampler reads a `length` column; keep it past the column pruning
        for r in rows:
            r["length"] = max(len(tok(r["chosen"])["input_ids"]), len(tok(r["rejected"])["input_ids"]))
        extra.update(length_grouping(), remove_unused_columns=False)
    ds = datasets.Dataset.from_list(rows)
    with tempfile.TemporaryDirectory() as out:
        conf = RewardConfig(output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
                            learning_rate=1e-4, report_to="none", logging_steps=10**9, save_strategy="no",
                            max_length=1024, use_cpu=True, disable_tqdm=True, **extra)
        trainer = RewardTrainer(model=model, args=conf, train_dataset=ds, processing_class=tok)
        t = time.perf_counter()
        trainer.train()
        rate = len(pairs) / (time.perf_counter() - t)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # TRL's defaults set bf16 process-wide; the next trainer asks for fp32
    return rate


def run_set(shape: str, args) -> dict[str, float]:
    skewed = shape != "equal"
    pairs = make_hh_pairs(args.pairs) if shape == "hh" else make_pairs(args.pairs, skewed=skewed)
    tok = tokenizer_for(pairs)
    data = encode_pairs(pairs, tok, max_length=1024)
    methods = {
        "rewardlab trainer": lambda: ours(tok, data, args, bucket=True),
        "bare loop, same batches": lambda: bare(tok, data, args, bucket=True),
        "TRL RewardTrainer (bf16 off, no grad ckpt)": lambda: trl(tok, pairs, args, cpu_settings=True),
        "TRL RewardTrainer (+ group_by_length)": lambda: trl(tok, pairs, args, cpu_settings=True,
                                                             group_by_length=True),
    }
    if shape == "skewed":
        methods["bare loop, random batches"] = lambda: bare(tok, data, args, bucket=False)
        if not args.skip_trl_defaults:  # bf16 autocast + gradient checkpointing: slow on CPU, so a quarter of the data
            methods["TRL RewardTrainer (its defaults)"] = lambda: trl(tok, pairs[: len(pairs) // 4], args, False)
    results: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.rounds):  # interleave so that background load hits every method alike
        for k, f in methods.items():
            results[k].append(f())
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n[{shape} lengths: {data.chosen.num_tokens + data.rejected.num_tokens} tokens in {len(data)} pairs]")
    for k, v in med.items():
        print(f"  {k:44s} {v:8.1f} pairs/s   rewardlab/this = {med['rewardlab trainer'] / v:5.2f}x")
    return med


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--skip-trl-defaults", action="store_true")
    ap.add_argument("--shapes", default="equal,skewed,hh", help="comma list of equal, skewed, hh")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, {args.pairs} pairs, batch {args.batch_size}, "
          f"GPT-2 {args.layers} layers x {args.embd}, median of {args.rounds} interleaved rounds")
    for shape in args.shapes.split(","):
        run_set(shape, args)


if __name__ == "__main__":
    main()
