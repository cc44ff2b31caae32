"""A small world for calibration and ensemble tests: two tiny 1-output checkpoints, a 2-output one, a tiny causal LM
policy (saved like a hub model), pairs and prompts."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

WORDS = "the cat dog sat on a mat big small red blue good bad".split()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build_world(d: Path) -> Path:
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_causal_lm, tiny_reward_model, train_tiny_tokenizer

    rng = random.Random(0)

    def s(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    rows = [{"prompt": s(4), "chosen": s(rng.randint(2, 12)), "rejected": s(rng.randint(2, 12)), "id": str(i)}
            for i in range(24)]
    write_jsonl(d / "pairs.jsonl", rows)
    write_jsonl(d / "ref.jsonl", [{"prompt": s(4), "chosen": s(rng.randint(2, 12)), "rejected": s(rng.randint(2, 12))}
                                  for _ in range(16)])
    write_jsonl(d / "prompts.jsonl", [{"prompt": s(3)} for _ in range(5)])
    tok = train_tiny_tokenizer([r["chosen"] for r in rows] + WORDS, vocab_size=96)
    for seed in (0, 1):
        save_reward_model(tiny_reward_model(tok, seed=seed, n_layer=1, n_embd=16), tok, d / f"rm{seed}",
                          manifest={"max_length": 64, "note": "kept"})
    save_reward_model(tiny_reward_model(tok, seed=2, n_layer=1, n_embd=16, num_outputs=2), tok, d / "k2",
                      manifest={"max_length": 64})
    policy = tiny_causal_lm(tok, seed=0, n_layer=1, n_embd=16)
    policy.save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    return d


def responses_of(path: Path) -> tuple[list, list]:
    """(prompts, responses): chosen then rejected of each pair, in file order."""
    prompts, responses = [], []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        prompts += [r["prompt"], r["prompt"]]
        responses += [r["chosen"], r["rejected"]]
    return prompts, responses


def pstats(values: list[float]) -> tuple[float, float]:
    """Mean and population std, by the standard library (an independent reference for the torch code)."""
    return statistics.fmean(values), statistics.pstdev(values)
