"""Offline DPO on preference pairs (Rafailov et al. 2023) — `rewardlab train --objective dpo`, cleanrl-style.

The policy starts from ``base`` ('tiny' or an HF causal-LM directory); the reference π_ref is ``reference`` (a
directory) or a frozen copy of the base. Reference log-probs are computed once before training (π_ref is frozen).
Each optimizer step runs chosen and rejected of a minibatch through the policy in one forward and minimizes::

    L = −log σ(β[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])   (× pair weight)

(``label_smoothing`` ε: the cDPO variant). Logged per step: loss, implicit-reward accuracy (r_w > r_l), margin.

The loop is :mod:`rewardlab.train.engine`'s (:class:`DPOObjective`), as for BT, with its shared options:
``grad_accum`` (up to that many micro-batches a step; an epoch's last step may hold fewer and averages over those),
``bucket`` (length-bucketed batches, see ``train.batches.make_batches``), ``mixed_precision`` (``auto``: bf16 autocast
on a GPU that supports it, else fp32; ``bf16`` autocast anywhere; ``fp16`` autocast + gradient scaling, CUDA only;
the reference log-probs are computed under the same autocast), ``gradient_checkpointing``, ``device``, and
checkpoints (``save_every``, each epoch's end) that ``--resume`` continues from (the reference log-probs are computed
again: π_ref is the same frozen model). **Refused** with a UserError: the BT-only options in :data:`IGNORED`, and
``accelerate launch`` with several processes.
The output directory is a ``save_pretrained`` causal LM (safetensors) + tokenizer, plus ``rewardlab_dpo.json``
(β, reference path, max_length, metrics) so that ``dpo:OUTPUT`` or the bare path loads it as an
:class:`~rewardlab.rewards.implicit.ImplicitDPOReward`. A tiny base's reference is saved to ``OUTPUT/reference``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import PreferencePair
from rewardlab.data.tokenize import TruncationStats
from rewardlab.errors import UserError
from rewardlab.models.backbone import disable_dropout, load_causal_lm
from rewardlab.models.formats.dpo import save_manifest
from rewardlab.models.policy_logps import policy_inputs, sequence_logps
from rewardlab.train.batches import EpochPlan, steps_per_epoch
from rewardlab.train.config import Problem, TrainConfig, opt
from rewardlab.train.encode import data_hash
from rewardlab.train.engine import Engine, Loop, Objective
from rewardlab.train.losses import dpo_loss
from rewardlab.train.rundir import check_run_output, clear_run, run_identity
from rewardlab.train.trainer import enable_gradient_checkpointing

# BT-only options; refused when set for DPO
IGNORED = ("centering", "pooling", "num_outputs", "lora_r", "head", "drop_ties")


@dataclass
class DPOConfig(TrainConfig):
    beta: float = opt(0.1, "dpo: β, the strength of the KL anchor to the reference")
    reference: str | None = opt(None, "dpo: the reference policy, an HF causal-LM directory (null: a frozen copy of "
                                "the base)")
    lr: float = opt(1e-4, "learning rate")
    batch_size: int = 8

    def problems(self) -> list[Problem]:
        problems = super().problems()
        if self.beta <= 0:
            problems.append(("beta", "must be > 0"))
        defaults = TrainConfig()
        problems += [(k, "applies to --objective bt only") for k in IGNORED
                     if getattr(self, k) != getattr(defaults, k)]
        return problems


def _texts(x: Any) -> list[str]:
    return [x] if isinstance(x, str) else [m["content"] for m in x]


def build_policy(cfg: DPOConfig, pairs: list[PreferencePair], tokenizer=None) -> tuple[Any, Any]:
    """(policy, tokenizer): 'tiny' (tokenizer trained on the pairs' texts, or ``tokenizer``: a resumed run's; random
    tiny GPT-2) or an HF directory."""
    if cfg.base == "tiny":
        from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

        if tokenizer is None:
            texts = [t for p in pairs for x in (p.prompt, p.chosen, p.rejected) for t in _texts(x)]
            tokenizer = train_tiny_tokenizer(texts, vocab_size=cfg.tiny_vocab)
        policy = tiny_causal_lm(tokenizer, seed=cfg.seed, n_layer=cfg.tiny_layers, n_embd=cfg.tiny_embd,
                                n_positions=max(256, cfg.max_length))
        return policy, tokenizer
    return load_causal_lm(cfg.base)


@dataclass
class EncodedDPO:
    """Token ids per pair; each response has its own prompt ids (over budget, each item is cut on its own, exactly
    as :class:`~rewardlab.rewards.implicit.ImplicitDPOReward` encodes it at scoring time)."""

    prompt: list[tuple[list[int], list[int]]]  # (prompt ids for chosen, prompt ids for rejected)
    chosen: list[list[int]]
    rejected: list[list[int]]
    weight: torch.Tensor
    stats: TruncationStats


def encode_dpo_pairs(pairs: list[PreferencePair], tokenizer, max_length: int) -> EncodedDPO:
    prompt, chosen, rejected = [], [], []
    stats = TruncationStats()
    for p in pairs:
        pc, c = policy_inputs(tokenizer, p.prompt, p.chosen, max_length, stats)
        pr, r = policy_inputs(tokenizer, p.prompt, p.rejected, max_length, stats)
        prompt.append((pc, pr))
        chosen.append(c)
        rejected.append(r)
    return EncodedDPO(prompt, chosen, rejected, torch.tensor([p.weight for p in pairs], dtype=torch.float32), stats)


def dpo_lengths(data: EncodedDPO) -> list[int]:
    """Per pair, the longer of its two (prompt + response) sequences: the width it adds to a padded batch."""
    return [max(len(pc) + len(c), len(pr) + len(r)) for (pc, pr), c, r in zip(data.prompt, data.chosen,
                                                                                data.rejected)]


def pair_logps(model, data: EncodedDPO, idx: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probs of chosen and rejected for pairs ``idx``, one forward of ``2b`` sequences (with grad)."""
    from rewardlab.models.generation import sequence_logprobs

    p = [data.prompt[i][0] for i in idx] + [data.prompt[i][1] for i in idx]
    logps, mask = sequence_logprobs(model, p, [data.chosen[i] for i in idx] + [data.rejected[i] for i in idx], pad_id)
    seq = (logps * mask).sum(-1)
    return seq[: len(idx)], seq[len(idx) :]


@torch.no_grad()
def implicit_accuracy(policy, reference, data: EncodedDPO, beta: float, pad_id: int) -> dict[str, float]:
    """Accuracy of the implicit reward on pairs (a tie counts as wrong) and its mean margin."""
    p2 = [p for p, _ in data.prompt] + [p for _, p in data.prompt]
    r2 = data.chosen + data.rejected
    lp = sequence_logps(policy, p2, r2, pad_id) - sequence_logps(reference, p2, r2, pad_id)
    n = len(data.prompt)
    margin = beta * (lp[:n] - lp[n:])
    return {"accuracy": (margin > 0).float().mean().item(), "margin": margin.mean().item()}


class DPOObjective(Objective):
    """The DPO objective: batches of pairs, the weighted DPO loss against the precomputed reference log-probs
    (``ref_c``, ``ref_r``), the implicit reward's accuracy and margin, and :func:`implicit_accuracy` on the eval
    pairs at each epoch's end (under autocast, as training)."""

    name, unit = "dpo", "pairs"
    shown, eval_shown = ("reward_accuracy", "acc"), ("eval_accuracy", "eval implicit-reward accuracy")

    def __init__(self, train: EncodedDPO, ref_c: torch.Tensor, ref_r: torch.Tensor, cfg: DPOConfig, pad_id: int,
                 reference: Any = None, eval_data: EncodedDPO | None = None):
        self.train, self.ref_c, self.ref_r, self.cfg, self.pad_id = train, ref_c, ref_r, cfg, pad_id
        self.weight = train.weight.to(ref_c.device)
        self.lengths = dpo_lengths(train)
        self.reference, self.eval_data = reference, eval_data

    def plan(self, epoch: int, world: int) -> EpochPlan:
        return EpochPlan.build(self.lengths, self.cfg.batch_size, self.cfg.seed, epoch, self.cfg.bucket, world)

    def loss(self, model, idx: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
        beta, ref_c, ref_r = self.cfg.beta, self.ref_c[idx], self.ref_r[idx]
        lc, lr_ = pair_logps(model, self.train, idx, self.pad_id)
        per_pair = dpo_loss(lc, lr_, ref_c, ref_r, beta, self.cfg.label_smoothing)
        w = self.weight[idx]
        loss = (per_pair.float() * w).sum() / w.sum().clamp_min(1e-8)
        return loss, beta * ((lc - ref_c) - (lr_ - ref_r)).detach().float()

    def metrics(self, stats: list[torch.Tensor]) -> dict[str, float]:
        margin = torch.cat(stats)
        return {"reward_accuracy": (margin > 0).float().mean().item(), "reward_margin": margin.mean().item()}

    def evaluate(self, model, accelerator) -> dict[str, float] | None:
        if self.eval_data is None:
            return None
        model.eval()
        with accelerator.autocast():
            result = implicit_accuracy(model, self.reference, self.eval_data, self.cfg.beta, self.pad_id)
        model.train()
        return {f"eval_{k}": v for k, v in result.items()}


def train_dpo(pairs: list[PreferencePair], cfg: DPOConfig, eval_pairs: list[PreferencePair] | None = None,
              progress: bool = True, overwrite: bool = False, origin: str = "data",
              resume: bool = False) -> dict[str, Any]:
    """Train a DPO policy on ``pairs`` and save it to ``cfg.output``. Returns the run summary (also ``run.json``).

    The output directory is checked first and created (or, with ``overwrite``, cleared) only once the data is
    tokenized and known to make at least one batch (see :mod:`rewardlab.train.rundir`); ``resume`` continues the
    run from its last checkpoint (a tiny base's tokenizer is part of the run's state: ``checkpoints/tokenizer``)."""
    from rewardlab.io import write_json_atomic

    out = check_run_output(cfg.output, resume=resume, overwrite=overwrite)
    engine = Engine(Loop.from_config(cfg), "dpo", out, resume, progress)  # a precision or tracker we lack fails here
    if engine.world > 1:
        raise UserError("--objective dpo trains in one process (no `accelerate launch` data parallelism yet)")
    pairs = list(pairs)
    eval_pairs = list(eval_pairs) if eval_pairs is not None else None
    device, autocast = engine.device, engine.accelerator.autocast
    tok_dir = out / "checkpoints" / "tokenizer"
    saved_tok = None
    if resume and cfg.base == "tiny" and tok_dir.exists():
        from transformers import AutoTokenizer

        saved_tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(cfg.seed)
    policy, tokenizer = build_policy(cfg, pairs, saved_tok)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    pad_id = int(tokenizer.pad_token_id)
    if cfg.reference:
        reference, _ = load_causal_lm(cfg.reference, device)
        ref_path = str(Path(cfg.reference).resolve())
    else:
        reference = copy.deepcopy(policy)
        ref_path = "reference" if cfg.base == "tiny" else str(Path(cfg.base).resolve())
    policy.to(device)
    reference.to(device).eval().requires_grad_(False)
    if cfg.disable_dropout:  # as TRL's DPOConfig: dropout would make log π noisy
        disable_dropout(policy)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(policy, cfg.base)

    train = encode_dpo_pairs(pairs, tokenizer, cfg.max_length)
    print(f"train data: {train.stats.summary()}")
    evald = encode_dpo_pairs(eval_pairs, tokenizer, cfg.max_length) if eval_pairs else None
    steps_per_epoch(len(pairs), cfg.batch_size, cfg.grad_accum, 1, origin)
    with autocast():
        ref_c = sequence_logps(reference, [p for p, _ in train.prompt], train.chosen, pad_id).to(device)
        ref_r = sequence_logps(reference, [p for _, p in train.prompt], train.rejected, pad_id).to(device)
    if overwrite:
        clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    if not tok_dir.exists():
        tokenizer.save_pretrained(tok_dir)
    result = engine.fit(DPOObjective(train, ref_c, ref_r, cfg, pad_id, reference, evald), policy,
                        run_identity(cfg, data_hash(pairs), 1))
    policy.eval()
    final = {k: v for k, v in result.final.items() if k not in ("epoch", "step")}
    metrics = {**final, "steps": result.step, "train_pairs": len(pairs), "pairs_seen": result.seen}
    policy.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if ref_path == "reference":
        reference.save_pretrained(out / "reference", safe_serialization=True)
        tokenizer.save_pretrained(out / "reference")
    summary = {"config": cfg.to_dict(), "data_hash": data_hash(pairs), "truncation": train.stats.as_dict(),
               "eval_truncation": evald.stats.as_dict() if evald else None, "metrics": metrics}
    write_json_atomic(out / "run.json", summary)
    save_manifest(out, {"objective": "dpo", "beta": cfg.beta, "reference": ref_path, "max_length": cfg.max_length,
                        "base": cfg.base, "data_hash": summary["data_hash"], "truncation": summary["truncation"],
                        "metrics": metrics})
    return summary
