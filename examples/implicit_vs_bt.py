"""Implicit DPO reward vs an explicit Bradley–Terry RM trained on the same gold-labelled pairs (issue 8).

    PYTHONPATH=examples python examples/implicit_vs_bt.py --output runs/implicit-vs-bt [--seeds 0 1 2]

World: prompts and responses are word sequences; the gold reward is

    r*(x, y) = Σ_{w∈y} value(w) − 0.25·|y| + 0.5·|{w ∈ y : w ∈ x}|     (sentiment, brevity, relevance)

π_ref is a tiny GPT-2 fine-tuned (SFT) on random prompt→response texts. Preference data: two π_ref samples per
prompt, labelled by P(a ≻ b) = σ(r*(a) − r*(b)) (Bradley–Terry noise). On the same pairs we train (1) a BT RM whose
backbone starts from π_ref's transformer and (2) a DPO policy from π_ref (β = 0.1), whose implicit reward
β·log π/π_ref is scored like any Reward. Both (and the gold reward, as a ceiling) go through
``rewardlab.evaluate.evaluate_reward``: held-out pair accuracy (noisy labels), accuracy against the noise-free gold
order, and teacher metrics on fresh π_ref samples (RV, on-policy accuracy vs gold). The gold is also importable as
``python:implicit_vs_bt:gold``, so the same comparison (with the HTML teacher report) is one command::

    PYTHONPATH=examples rewardlab eval OUT/seed0/dpo --compare OUT/seed0/bt --data OUT/seed0/test.jsonl \
        --policy OUT/seed0/ref --prompts OUT/seed0/eval_prompts.jsonl -m 8 --max-new-tokens 16 \
        --gold python:implicit_vs_bt:gold -o OUT/seed0/report
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

VALUES = {"good": 1.0, "great": 1.0, "fine": 0.5, "nice": 0.5, "bad": -1.0, "poor": -1.0, "awful": -1.5}
WORDS = list(VALUES) + "the a cat dog sat ran on mat big small red blue sun tree one two".split()


def gold(prompt: str, response: str) -> float:
    """The world's gold reward r*(x, y) (see the module docstring)."""
    words, seen = response.split(), set(prompt.split())
    return sum(VALUES.get(w, 0.0) for w in words) - 0.25 * len(words) + 0.5 * sum(w in seen for w in words)


def random_text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def sft_reference(prompts: list[str], out: Path, seed: int, steps: int = 300):
    """A tiny GPT-2 fine-tuned on prompt → random response texts, saved to ``out`` (the DPO reference, π₀)."""
    import torch

    from rewardlab.models.generation import sequence_logprobs
    from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer
    from rewardlab.rewards.implicit import policy_inputs

    rng = random.Random(seed)
    texts = [random_text(rng, 1, 12) for _ in range(4000)]
    tok = train_tiny_tokenizer(prompts + texts, vocab_size=256)
    lm = tiny_causal_lm(tok, seed=seed).train()
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = [policy_inputs(tok, rng.choice(prompts), rng.choice(texts)) for _ in range(32)]
        logps, mask = sequence_logprobs(lm, [p for p, _ in batch], [r for _, r in batch], tok.pad_token_id)
        loss = -(logps * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.eval().save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return lm, tok


def run_seed(out: Path, seed: int, n_train: int, n_test: int, beta: float) -> list[dict]:
    import torch

    from rewardlab.data.records import PreferencePair
    from rewardlab.evaluate.suite import evaluate_reward
    from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout
    from rewardlab.models.generation import sample
    from rewardlab.rewards.base import FunctionReward
    from rewardlab.rewards.implicit import ImplicitDPOReward
    from rewardlab.rewards.model import ModelReward
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.dpo import DPOConfig, train_dpo
    from rewardlab.train.trainer import train_reward_model

    torch.manual_seed(seed)
    rng = random.Random(seed)
    prompts = list(dict.fromkeys(random_text(rng, 3, 8) for _ in range(n_train + n_test + 64)))
    d = out / f"seed{seed}"
    lm, tok = sft_reference(prompts, d / "ref", seed)

    # preference data: 2 π_ref samples per prompt, BT-noisy gold labels
    def pairs_for(ps: list[str], s: int) -> tuple[list[PreferencePair], list[int]]:
        ro = sample(lm, tok, ps, num_samples=2, max_new_tokens=16, seed=s)
        pairs, agree = [], []
        for i, p in enumerate(ps):
            a, b = ro.responses[2 * i], ro.responses[2 * i + 1]
            if a == b or not a or not b:  # empty samples (eos first) are legal, but data files reject them
                continue
            ga, gb = gold(p, a), gold(p, b)
            a_wins = rng.random() < 1 / (1 + math.exp(-(ga - gb)))
            pairs.append(PreferencePair(p, a, b) if a_wins else PreferencePair(p, b, a))
            agree.append(int((ga > gb) == a_wins) if ga != gb else -1)
        return pairs, agree

    train, _ = pairs_for(prompts[:n_train], seed * 10 + 1)
    test, agree = pairs_for(prompts[n_train : n_train + n_test], seed * 10 + 2)
    for name, rows_ in (("train", train), ("test", test)):  # for the CLI: rewardlab eval ... (module docstring)
        with open(d / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                         for p in rows_)
    with open(d / "eval_prompts.jsonl", "w") as f:
        f.writelines(json.dumps({"prompt": p}) + "\n" for p in prompts[-64:])

    common = dict(epochs=3, batch_size=16, max_length=64, seed=seed, log_every=50)
    train_reward_model(train, TrainConfig(base=str(d / "ref"), output=str(d / "bt"), lr=1e-3, **common),
                       progress=False, overwrite=True)
    train_dpo(train, DPOConfig(base=str(d / "ref"), output=str(d / "dpo"), lr=1e-3, beta=beta, **common),
              progress=False, overwrite=True)

    rewards = {"gold": FunctionReward(gold, name="gold"), "bt": ModelReward.from_pretrained(d / "bt"),
               "dpo-implicit": ImplicitDPOReward.from_pretrained(d / "dpo")}
    rollout = sample_rollout(lm, tok, prompts[-64:], SamplingConfig(num_samples=8, max_new_tokens=16, seed=seed))
    gold_order = [p for p, a in zip(test, agree) if a >= 0]
    gold_order = [p if a else PreferencePair(p.prompt, p.rejected, p.chosen)
                  for p, a in zip(gold_order, [a for a in agree if a >= 0])]
    rows = []
    for name, r in rewards.items():
        res = evaluate_reward(r, test, name, rollout=rollout, gold=rewards["gold"], seed=seed)
        clean = evaluate_reward(r, gold_order, name, seed=seed)
        t = res.metrics["teacher"]
        rows.append({"seed": seed, "reward": name, "n_train": len(train), "n_test": len(test),
                     "test_accuracy": res.metrics["pairs"]["accuracy"],
                     "gold_order_accuracy": clean.metrics["pairs"]["accuracy"],
                     "ece": res.metrics["pairs"]["calibration"]["ece"],
                     "reward_variance": t["reward_variance"], "on_policy_accuracy": t["on_policy_accuracy"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", default="runs/implicit-vs-bt")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--beta", type=float, default=0.1)
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for s in args.seeds for r in run_seed(out, s, args.n_train, args.n_test, args.beta)]
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    cols = ["seed", "reward", "test_accuracy", "gold_order_accuracy", "ece", "reward_variance", "on_policy_accuracy"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
