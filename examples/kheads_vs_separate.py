"""Ensembles as one model: a k-head BT reward model (k heads on one backbone) next to k separately trained models.

    PYTHONPATH=examples python examples/kheads_vs_separate.py [--output runs/kheads] [--k 4]

Same gold world as ``implicit_vs_bt.py`` (word sequences, r* = sentiment − 0.25·length + 0.5·relevance), with
off-policy pairs (random texts) labelled by P(a ≻ b) = σ(r*(a) − r*(b)). Trains ``rewardlab train --num-outputs k``
once and k single-head models with seeds 0..k−1, then reports for each: training time, held-out accuracy of the
mean (noisy labels and noise-free gold order) and how well ensemble disagreement (std across members of Δ)
predicts errors (``rewardlab.evaluate`` ensemble metrics).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from implicit_vs_bt import gold, random_text


def make_pairs(rng: random.Random, n: int):
    from rewardlab.data.records import PreferencePair

    pairs, clean = [], []
    while len(pairs) < n:
        x, a, b = random_text(rng, 3, 8), random_text(rng, 1, 12), random_text(rng, 1, 12)
        ga, gb = gold(x, a), gold(x, b)
        if ga == gb:
            continue
        a_wins = rng.random() < 1 / (1 + math.exp(-(ga - gb)))
        pairs.append(PreferencePair(x, a, b) if a_wins else PreferencePair(x, b, a))
        clean.append(PreferencePair(x, a, b) if ga > gb else PreferencePair(x, b, a))
    return pairs, clean


def main() -> None:
    import numpy as np

    from rewardlab.evaluate.suite import evaluate_reward
    from rewardlab.rewards.ensemble import EnsembleReward
    from rewardlab.rewards.model import ModelReward
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--output", default="runs/kheads")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=2000)
    args = ap.parse_args()
    out = Path(args.output)
    rng = random.Random(0)
    train, _ = make_pairs(rng, args.n_train)
    test, test_clean = make_pairs(rng, 500)
    common = dict(epochs=2, batch_size=16, max_length=64, lr=1e-3)

    # warm-up (imports, accelerate init, tokenizer training paths) so that the timed runs compare like with like
    train_reward_model(train[:64], TrainConfig(output=str(out / "warmup"), **common), progress=False,
                       overwrite=True)
    t0 = time.perf_counter()
    train_reward_model(train, TrainConfig(output=str(out / "kheads"), num_outputs=args.k, seed=0, **common),
                       progress=False, overwrite=True)
    t_heads = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(args.k):
        train_reward_model(train, TrainConfig(output=str(out / f"single{s}"), seed=s, **common), progress=False,
                           overwrite=True)
    t_sep = time.perf_counter() - t0

    heads = ModelReward.from_pretrained(out / "kheads")  # [n, k]: evaluate reduces by the mean, members = heads
    separate = EnsembleReward([ModelReward.from_pretrained(out / f"single{s}") for s in range(args.k)],
                              method="mean", standardize=False)
    rows = {}
    for name, r, secs in (("k-head (one backbone)", heads, t_heads), (f"{args.k} separate models", separate, t_sep),
                          ("single model (seed 0)", ModelReward.from_pretrained(out / "single0"), t_sep / args.k)):
        res = evaluate_reward(r, test, name).metrics["pairs"]
        clean = evaluate_reward(r, test_clean, name).metrics["pairs"]
        ens = res.get("ensemble", {})
        rows[name] = {"train_seconds": round(secs, 1), "test_accuracy": res["accuracy"],
                      "gold_order_accuracy": clean["accuracy"],
                      "disagreement_error_corr": ens.get("corr_with_error"), "members": ens.get("members")}
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:24s} " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items()))
    print(f"k-head training is {t_sep / t_heads:.1f}x faster than {args.k} separate models "
          f"({np.round(t_heads, 1)} s vs {np.round(t_sep, 1)} s)")


if __name__ == "__main__":
    main()
