"""The transformer level of the gold-reward world: real text, a real tiny GPT-2 policy, real RMs.

* Language: strings over an alphabet of ``n_letters`` letters, one token per letter (a byte-level tokenizer with
  no merges). A random Markov chain over the letters (Dirichlet rows, so each letter has a few likely successors)
  with a stop probability writes the pre-training corpus: prompt = the first ``prompt_len`` letters, response =
  the continuation.
* π₀ = :func:`rewardlab.models.tiny.tiny_causal_lm` pre-trained briefly on that corpus (its samples are diverse).
* Gold reward (the "human"): r*(x, y) = b(x) + mean_{c∈y} v[c] + a·(L − L²/(2L*)), L = len(y), with fixed letter
  values v ~ N(0, 1), a prompt offset b(x) = mean_{c∈x} u[c], and the same length trap as the tabular world: longer
  is better up to L*, worse beyond. A :class:`~rewardlab.rewards.base.FunctionReward`.
* Proxies = tiny GPT-2 reward models trained with the project's BT trainer (:mod:`rewardlab.train.trainer`) on pairs
  of π₀ samples labelled by r* with probability σ((r*(a) − r*(b))/τ).
* The perfectly accurate, low-variance RM of Razin et al. 2025 (:func:`low_variance_reward`):
  r_low(x, y) = m(x) + c(x)·(r*(x, y) − m(x)), m(x) = π₀'s mean gold for x, c(x) = ``factor`` on all but
  round((1 − fraction)·#prompts) randomly chosen prompts (c = 1 there). Within a prompt it ranks exactly as r*.

π₀ and the proxies are cached (safetensors) under ``$REWARDLAB_CACHE`` (default ``~/.cache/rewardlab``)/lab, keyed
by a hash of everything that determines them (config, seed, training pairs, and the source of the code that builds
them), so a second run skips pre-training and RM training.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import PreferencePair
from rewardlab.rewards.base import FunctionReward

CACHE_VERSION = 1
# The cache key also covers the code that builds the cached artifacts: edit any of these and the cache misses.
_KEYED_SOURCES = ("lab/lm_world.py", "models/tiny.py", "models/reward_model.py", "train/trainer.py", "train/losses.py")


def _code_hash() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in _KEYED_SOURCES:
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class LMWorldConfig:
    n_letters: int = 12
    prompt_len: int = 3
    max_response: int = 16
    stop_prob: float = 0.12          # per-letter probability that the chain stops (π₀'s answers are short)
    dirichlet: float = 0.3
    corpus_size: int = 4000
    pretrain_steps: int = 150        # 150 × 32 at lr 5e-3 reaches the chain's entropy rate (held-out NLL 1.85 vs
    pretrain_batch: int = 32         # ≈ 1.85 nats/token for the true chain) in ~4 s on one CPU thread
    pretrain_lr: float = 5e-3
    n_layer: int = 2
    n_embd: int = 64
    length_weight: float = 0.3       # a
    length_optimum: float = 10.0     # L*
    prompt_offset_std: float = 1.0
    label_temperature: float = 0.5   # τ
    label_noise: float = 0.0         # probability that a label is flipped

    def key(self, seed: int, *extra: object) -> str:
        blob = json.dumps([CACHE_VERSION, _code_hash(), asdict(self), seed, *extra], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("REWARDLAB_CACHE", Path.home() / ".cache" / "rewardlab")) / "lab"


class LMWorld:
    """A seeded text world: Markov chain, letter values, gold reward, prompts."""

    def __init__(self, config: LMWorldConfig, seed: int):
        self.config, self.seed = config, seed
        g = torch.Generator().manual_seed(seed)
        k = config.n_letters
        self.letters = [chr(ord("a") + i) for i in range(k)]
        self.transitions = self._dirichlet(g, k, config.dirichlet)
        self.values = torch.randn(k, generator=g)
        self.offsets = torch.randn(k, generator=g)

    @staticmethod
    def _dirichlet(g: torch.Generator, k: int, alpha: float) -> torch.Tensor:
        # Dirichlet(α) via normalized Gamma(α) draws; Gamma(α) = Gamma(α + 1)·U^(1/α), Gamma(α+1) by Marsaglia–Tsang
        x = torch.empty(k, k)
        for i in range(k):
            for j in range(k):
                x[i, j] = _gamma(alpha + 1, g) * float(torch.rand((), generator=g)) ** (1 / alpha)
        return x / x.sum(1, keepdim=True)

    def walk(self, n_max: int, rng: random.Random) -> str:
        """One chain run of at most ``n_max`` letters (stops early with probability ``stop_prob`` per letter)."""
        s = rng.randrange(self.config.n_letters)
        out = [s]
        weights = self.transitions.tolist()
        while len(out) < n_max and rng.random() >= self.config.stop_prob:
            s = rng.choices(range(self.config.n_letters), weights=weights[s])[0]
            out.append(s)
        return "".join(self.letters[i] for i in out)

    def corpus(self) -> list[str]:
        rng = random.Random(f"corpus-{self.seed}")
        return [self.walk(self.config.prompt_len + self.config.max_response, rng)
                for _ in range(self.config.corpus_size)]

    def prompts(self, n: int) -> list[str]:
        """``n`` prompts: chain runs of exactly ``prompt_len`` letters (the same for a given seed)."""
        rng = random.Random(f"prompts-{self.seed}")
        out: list[str] = []
        while len(out) < n:
            p = self.walk(self.config.prompt_len, rng)
            if len(p) == self.config.prompt_len:
                out.append(p)
        return out

    def gold_value(self, prompt: str, response: str) -> float:
        cfg = self.config
        idx = {c: i for i, c in enumerate(self.letters)}
        r = [idx[c] for c in response if c in idx]
        p = [idx[c] for c in prompt if c in idx]
        b = cfg.prompt_offset_std * (sum(float(self.offsets[i]) for i in p) / max(len(p), 1))
        quality = sum(float(self.values[i]) for i in r) / len(r) if r else -1.0
        L = len(r)
        return b + quality + cfg.length_weight * (L - L * L / (2 * cfg.length_optimum))

    def gold(self) -> FunctionReward:
        return FunctionReward(self.gold_value, name="gold")

    def label_pairs(self, prompts: list[str], responses: list[list[str]], n_pairs: int, seed: int
                    ) -> list[PreferencePair]:
        """BT-labelled pairs of distinct responses to the same prompt: P(a ≻ b) = σ((r*(a) − r*(b))/τ), then each
        label flipped with probability ``label_noise``."""
        rng = random.Random(seed)
        pairs: list[PreferencePair] = []
        while len(pairs) < n_pairs:
            i = rng.randrange(len(prompts))
            a, b = rng.sample(responses[i], 2)
            if a == b:
                continue
            d = self.gold_value(prompts[i], a) - self.gold_value(prompts[i], b)
            p = 1 / (1 + math.exp(-d / self.config.label_temperature))
            eps = self.config.label_noise
            a_wins = rng.random() < (1 - eps) * p + eps * (1 - p)
            pairs.append(PreferencePair(prompts[i], a if a_wins else b, b if a_wins else a))
        return pairs


def _gamma(shape: float, g: torch.Generator) -> float:
    """One Gamma(shape ≥ 1) draw by Marsaglia–Tsang, from a seeded generator."""
    d = shape - 1 / 3
    c = 1 / math.sqrt(9 * d)
    while True:
        x = float(torch.randn((), generator=g))
        v = (1 + c * x) ** 3
        u = float(torch.rand((), generator=g))
        if v > 0 and math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v


def pretrained_policy(world: LMWorld):
    """π₀ for this world: load it from the cache, or pre-train a tiny GPT-2 on the world's corpus and cache it."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

    cfg = world.config
    path = cache_root() / f"policy-{cfg.key(world.seed)}"
    if (path / "model.safetensors").exists():
        return GPT2LMHeadModel.from_pretrained(path, use_safetensors=True).eval(), AutoTokenizer.from_pretrained(path)
    corpus = world.corpus()
    tok = train_tiny_tokenizer(corpus, vocab_size=260)  # the 256-byte alphabet + specials: one token per letter
    torch.manual_seed(world.seed)
    model = tiny_causal_lm(tok, seed=world.seed, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=2)
    enc = [tok(s)["input_ids"] for s in corpus]  # ends with eos: the policy learns when to stop
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr)
    rng = random.Random(world.seed)
    model.train()
    for _ in range(cfg.pretrain_steps):
        batch = [enc[rng.randrange(len(enc))] for _ in range(cfg.pretrain_batch)]
        ids, mask = pad_batch(batch, tok.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    if path.exists():  # another run finished first
        shutil.rmtree(tmp)
    else:
        tmp.replace(path)
    return model, tok


def low_variance_reward(world: LMWorld, prompts: list[str], mean_gold: list[float], factor: float,
                        fraction: float, seed: int) -> FunctionReward:
    """Razin et al.'s perfectly accurate, low-RV RM (module docstring): r* shrunk by ``factor`` toward its π₀ mean
    ``mean_gold[i]`` of ``prompts[i]`` on all distinct prompts but exactly round((1 − fraction)·#distinct) of them.
    A fixed count (not a coin per prompt) keeps the RM the same strength in every world: the policy is shared
    across prompts, so each full-variance prompt also teaches the others."""
    distinct = sorted(set(prompts))
    full = set(random.Random(f"lowvar-{seed}").sample(distinct, round((1 - fraction) * len(distinct))))
    mean = dict(zip(prompts, mean_gold))

    def low(p: str, r: str) -> float:
        m = mean[p]
        return m + (1.0 if p in full else factor) * (world.gold_value(p, r) - m)

    return FunctionReward(low, name="perfect, low-RV")


def trained_proxy(world: LMWorld, pairs: list[PreferencePair], name: str, steps: int, seed: int,
                  device: str = "cpu", batch_size: int = 512):
    """A tiny GPT-2 RM trained with the project's BT trainer on ``pairs`` (cached); returns a ModelReward."""
    from rewardlab.models.formats import CHECKPOINT
    from rewardlab.rewards.model import ModelReward
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    blob = json.dumps([[p.prompt, p.chosen, p.rejected] for p in pairs])
    key = world.config.key(world.seed, name, steps, seed, hashlib.sha256(blob.encode()).hexdigest())
    path = cache_root() / f"proxy-{key}"
    if not CHECKPOINT.detect(path):  # a finished run: its manifest is written last
        cfg = TrainConfig(base="tiny", output=str(path), epochs=1000, max_steps=steps, batch_size=32, lr=2e-3,
                          max_length=64, tiny_layers=1, tiny_embd=32, tiny_vocab=260, seed=seed, log_every=10**9)
        with contextlib.redirect_stdout(io.StringIO()):
            train_reward_model(pairs, cfg, progress=False, overwrite=True)  # a killed run leaves a partial cache dir
    return ModelReward.from_pretrained(path, device=device, name=name, batch_size=batch_size)
