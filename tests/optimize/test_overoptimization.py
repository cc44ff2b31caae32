"""The overoptimization curve on tiny models (Gao et al. 2022 in miniature), end to end:

π₀ = a tiny GPT-2 pre-trained briefly on random word sequences; gold = +1 per distinct "good" word, −0.5 per
repeated word; proxy = a tiny reward model trained (rewardlab.train) on 200 π₀ pairs labelled by the gold with
Bradley–Terry noise and 25% flipped labels. RLOO against the proxy (β = 0) raises the proxy steadily while the gold
rises, peaks and collapses as the policy learns to repeat "good". With β = 0.05 the KL plateaus and gold holds.

Run: ``.venv/bin/pytest -m slow -s tests/optimize/test_overoptimization.py`` (prints the curves).
"""

import math
import random

import pytest
import torch

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import PreferencePair
from rewardlab.models.generation import sample
from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer
from rewardlab.optimize.rloo import RLOOArgs, train_rloo
from rewardlab.rewards.base import FunctionReward

WORDS = "the cat dog sat ran on a mat big small red blue good bad answer question please help me yes no".split()
GOOD = {"good", "please", "help", "yes", "answer"}


def gold_fn(prompt: str, response: str) -> float:
    w = response.split()
    return float(len(GOOD & set(w))) - 0.5 * (len(w) - len(set(w)))


def build_world(tmp_path, n_pairs: int = 200):
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) for _ in range(3000)]
    prompts = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(256)]
    tok = train_tiny_tokenizer(corpus, vocab_size=400)
    pi0 = tiny_causal_lm(tok, seed=0)
    opt = torch.optim.AdamW(pi0.parameters(), lr=3e-3)
    pi0.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(len(corpus), (32,), generator=g).tolist()
        seqs = [tok(" ".join(rng.choice(WORDS) for _ in range(3)) + " " + corpus[i])["input_ids"] for i in idx]
        ids, mask = pad_batch(seqs, tok.pad_token_id, side="left")
        loss = pi0(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                   labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    pi0.eval()

    from rewardlab.rewards.model import ModelReward
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    ro = sample(pi0, tok, prompts, 2, 16, seed=1)
    lab = random.Random(1)
    pairs = []
    for i in range(0, 2 * n_pairs, 2):
        a, b = ro.responses[i], ro.responses[i + 1]
        a_wins = lab.random() < 1 / (1 + math.exp(-(gold_fn("", a) - gold_fn("", b))))
        if lab.random() < 0.25:
            a_wins = not a_wins
        pairs.append(PreferencePair(ro.prompts[i], a if a_wins else b, b if a_wins else a))
    cfg = TrainConfig(base="tiny", output=str(tmp_path / "proxy_rm"), epochs=8, batch_size=16, lr=1e-3,
                      max_length=64, seed=0)
    train_reward_model(pairs, cfg, progress=False)
    return pi0, tok, ModelReward.from_pretrained(tmp_path / "proxy_rm"), prompts


@pytest.mark.slow
def test_rloo_overoptimizes_a_noisy_proxy(tmp_path):
    pi0, tok, proxy, prompts = build_world(tmp_path)
    gold = FunctionReward(gold_fn, name="gold")
    runs = {}
    for beta in (0.0, 0.05):
        args = RLOOArgs(steps=60, k=4, prompts_per_step=16, kl_coef=beta, lr=1e-3, max_new_tokens=16, eval_every=4,
                        eval_prompts=64, eval_samples=4, seed=0)
        policy = tiny_causal_lm(tok)
        policy.load_state_dict(pi0.state_dict())
        runs[beta] = train_rloo(policy, tok, proxy, prompts, args, gold=gold, output_dir=tmp_path / f"b{beta}",
                                progress=False)
        print(f"\nRLOO, kl_coef={beta}")
        for h in runs[beta]["evaluations"]:
            print(f"step {h['step']:3d}  sqrt_kl {h['sqrt_kl']:6.3f}  proxy {h['proxy_mean']:6.3f}  "
                  f"gold {h['gold_mean']:6.3f}")
        print("Gao RL fit:", runs[beta]["gao_fit"])
    ev = runs[0.0]["evaluations"]
    proxy_curve, gold_curve = [h["proxy_mean"] for h in ev], [h["gold_mean"] for h in ev]
    peak = max(range(len(ev)), key=lambda i: gold_curve[i])
    assert proxy_curve[-1] > proxy_curve[0] + 1.0  # the proxy keeps rising ...
    assert 0 < peak < len(ev) - 1 and gold_curve[peak] > gold_curve[0] + 0.1  # ... gold peaks in between ...
    assert gold_curve[-1] < gold_curve[peak] - 1.0  # ... and collapses
    # a KL penalty bounds the drift and keeps more gold at the end
    assert runs[0.05]["evaluations"][-1]["kl"] < 0.5 * ev[-1]["kl"]
    assert runs[0.05]["evaluations"][-1]["gold_mean"] > gold_curve[-1] + 1.0
