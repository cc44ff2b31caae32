"""Offline DPO on preference pairs (Rafailov et al. 2023) — `rewardlab train --objective dpo`, cleanrl-style.

The policy starts from ``base`` ('tiny' or an HF causal-LM directory); the reference π_ref is ``reference`` (a
directory) or a frozen copy of the base. Reference log-probs are computed once before training (π_ref is frozen).
Each optimizer step runs chosen and rejected of a minibatch through the policy in one forward and minimizes::

    L = −log σ(β[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])   (× pair weight)

(``label_smoothing`` ε: the cDPO variant). Logged per step: loss, implicit-reward accuracy (r_w > r_l), margin.

Shared options, as in the BT trainer: ``grad_accum`` (up to that many micro-batches a step; an epoch's last step may
hold fewer and averages over those), ``bucket`` (length-bucketed batches, see ``train.batches.make_batches``),
``mixed_precision`` (``auto``: bf16 autocast on a GPU that supports it, else fp32; ``bf16`` autocast anywhere;
``fp16`` autocast + gradient scaling, CUDA only; the reference log-probs are computed under the same autocast),
``gradient_checkpointing`` and ``device``. **Refused** with a UserError: ``save_every`` (a DPO run writes no
checkpoints and cannot ``--resume``), and the BT-only options in :data:`IGNORED`.
The output directory is a ``save_pretrained`` causal LM (safetensors) + tokenizer, plus ``rewardlab_dpo.json``
(β, reference path, max_length, metrics) so that ``dpo:OUTPUT`` or the bare path loads it as an
:class:`~rewardlab.rewards.implicit.ImplicitDPOReward`. A tiny base's reference is saved to ``OUTPUT/reference``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
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
from rewardlab.train.batches import make_batches, steps_per_epoch
from rewardlab.train.config import Problem, TrainConfig, opt
from rewardlab.train.encode import data_hash
from rewardlab.train.losses import dpo_loss
from rewardlab.train.rundir import check_run_output, clear_run
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
        if self.save_every:
            problems.append(("save_every", "a DPO run writes no checkpoints (it cannot --resume); drop it"))
        if self.beta <= 0:
            problems.append(("beta", "must be > 0"))
        defaults = TrainConfig()
        problems += [(k, "applies to --objective bt only") for k in IGNORED
                     if getattr(self, k) != getattr(defaults, k)]
        return problems


def _texts(x: Any) -> list[str]:
    return [x] if isinstance(x, str) else [m["content"] for m in x]


def build_policy(cfg: DPOConfig, pairs: list[PreferencePair]) -> tuple[Any, Any]:
    """(policy, tokenizer): 'tiny' (tokenizer trained on the pairs' texts, random tiny GPT-2) or an HF directory."""
    if cfg.base == "tiny":
        from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

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


def precision(cfg: DPOConfig, device: torch.device) -> tuple[Callable[[], AbstractContextManager], Any]:
    """``(autocast context factory, GradScaler or None)`` for ``cfg.mixed_precision`` (see the module docstring)."""
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if mp == "fp16" and device.type != "cuda":
        raise UserError("--mixed-precision fp16 needs a CUDA device (use bf16 or no)")
    if mp == "no":
        return nullcontext, None
    dtype = torch.bfloat16 if mp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if mp == "fp16" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


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


def train_dpo(pairs: list[PreferencePair], cfg: DPOConfig, eval_pairs: list[PreferencePair] | None = None,
              progress: bool = True, overwrite: bool = False, origin: str = "data") -> dict[str, Any]:
    """Train a DPO policy on ``pairs`` and save it to ``cfg.output``. Returns the run summary (also ``run.json``).

    The output directory is checked first and created (or, with ``overwrite``, cleared) only once the data is
    tokenized and known to make at least one batch (see :mod:`rewardlab.train.rundir`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rewardlab.io import write_json_atomic
    from rewardlab.models.device import resolve_device
    from rewardlab.tracking import RunTracker

    out = check_run_output(cfg.output, resume=False, overwrite=overwrite)
    tracker = RunTracker(cfg.report_to, out, "dpo", cfg.to_dict())  # a missing package fails here, before any work
    pairs = list(pairs)
    eval_pairs = list(eval_pairs) if eval_pairs is not None else None
    device = resolve_device(cfg.device)
    autocast, scaler = precision(cfg, device)
    torch.manual_seed(cfg.seed)
    policy, tokenizer = build_policy(cfg, pairs)
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
    per_epoch = steps_per_epoch(len(pairs), cfg.batch_size, cfg.grad_accum, 1, origin)
    with autocast():
        ref_c = sequence_logps(reference, [p for p, _ in train.prompt], train.chosen, pad_id).to(device)
        ref_r = sequence_logps(reference, [p for _, p in train.prompt], train.rejected, pad_id).to(device)
    weight = train.weight.to(device)
    lengths = dpo_lengths(train)

    total = cfg.total_steps(per_epoch)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.resolved_lr(),
                                  weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # linear warmup, then linear decay to 0
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    if overwrite:
        clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "metrics.jsonl").open("w")
    bar = Progress(TextColumn("[bold]dpo"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), disable=not progress)
    step, epoch, final, pairs_seen = 0, 0, {}, 0
    policy.train()
    with bar:
        task = bar.add_task("dpo", total=total, info="")
        while step < total:
            micro = make_batches(lengths, cfg.batch_size, cfg.seed, epoch, cfg.bucket)
            for b in range(0, len(micro), cfg.grad_accum):
                if step >= total:
                    break
                group = micro[b : b + cfg.grad_accum]
                loss_sum, margins = 0.0, []
                for idx in group:  # gradient accumulation: the mean over the micro-batches actually in this step
                    with autocast():
                        lc, lr_ = pair_logps(policy, train, idx, pad_id)
                        per_pair = dpo_loss(lc, lr_, ref_c[idx], ref_r[idx], cfg.beta, cfg.label_smoothing)
                        w = weight[idx]
                        loss = (per_pair.float() * w).sum() / w.sum().clamp_min(1e-8) / len(group)
                    (scaler.scale(loss) if scaler else loss).backward()
                    loss_sum += loss.item()
                    margins.append(cfg.beta * ((lc - ref_c[idx]) - (lr_ - ref_r[idx])).detach().float())
                    pairs_seen += len(idx)
                if scaler:
                    scaler.unscale_(optimizer)
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                margin = torch.cat(margins)
                row = {"step": step, "epoch": epoch, "loss": loss_sum, "reward_accuracy": (margin > 0).float()
                       .mean().item(), "reward_margin": margin.mean().item(), "lr": scheduler.get_last_lr()[0]}
                if step % cfg.log_every == 0 or step == total:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    tracker.log(row)
                bar.update(task, completed=step, info=f"loss {row['loss']:.3f} acc {row['reward_accuracy']:.2f}")
            if evald is not None:
                policy.eval()
                with autocast():
                    final = {f"eval_{k}": v for k, v in
                             implicit_accuracy(policy, reference, evald, cfg.beta, pad_id).items()}
                policy.train()
                log.write(json.dumps({"step": step, "epoch": epoch, **final}) + "\n")
                log.flush()
                tracker.log({"step": step, "epoch": epoch, **final})
                bar.console.print(f"epoch {epoch}: eval implicit-reward accuracy {final['eval_accuracy']:.3f}")
            epoch += 1
    log.close()
    tracker.close()
    policy.eval()
    metrics = {**final, "steps": step, "train_pairs": len(pairs), "pairs_seen": pairs_seen}
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
