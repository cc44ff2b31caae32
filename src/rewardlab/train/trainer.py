"""One Bradley–Terry training loop on `accelerate` (DESIGN §4): ``accelerate launch`` gives DDP/FSDP/DeepSpeed.

Each step scores chosen and rejected in **one** forward pass (``[2b, t]``), in length-bucketed batches. Checkpoints
hold model, optimizer, scheduler and RNG states (pickle-free), so a killed run resumes to the same weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from rewardlab.data.batching import length_sorted_batches, pad_batch
from rewardlab.data.records import PreferencePair
from rewardlab.data.tokenize import PairEncoder, TruncationStats
from rewardlab.models.backbone import disable_dropout
from rewardlab.models.reward_model import RewardModel
from rewardlab.train.config import TrainConfig
from rewardlab.train.losses import bt_loss, pairwise_correct
from rewardlab.train.state import load_state, rng_state, save_state, set_rng_state


@dataclass
class EncodedPairs:
    chosen: list[list[int]]
    rejected: list[list[int]]
    margin: list[float]
    weight: list[float]
    stats: TruncationStats


def encode_pairs(pairs: list[PreferencePair], tokenizer, max_length: int, overlong: str = "truncate") -> EncodedPairs:
    """Tokenize pairs; a pair whose chosen or rejected is dropped as overlong is dropped whole (and counted)."""
    enc = PairEncoder(tokenizer, max_length=max_length, overlong=overlong)
    out = EncodedPairs([], [], [], [], enc.stats)
    for p in pairs:
        c, r = enc.encode(p.prompt, p.chosen), enc.encode(p.prompt, p.rejected)
        if c is None or r is None:
            continue
        out.chosen.append(c)
        out.rejected.append(r)
        out.margin.append(p.margin)
        out.weight.append(p.weight)
    return out


def make_batches(data: EncodedPairs, batch_size: int, seed: int, epoch: int, bucket: bool) -> list[list[int]]:
    """Pair indices per batch for one epoch, deterministic in (seed, epoch).

    Bucketed: shuffle, then sort chunks of 64 batches by length and cut them into batches (neighbours have similar
    lengths, so little padding), then shuffle the batch order. Plain: shuffle and cut.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(data.chosen)))
    rng.shuffle(order)
    if not bucket:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    lengths = [max(len(data.chosen[i]), len(data.rejected[i])) for i in order]
    chunk = batch_size * 64
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        for b in length_sorted_batches(lengths[start : start + chunk], batch_size):
            batches.append([part[i] for i in b])
    rng.shuffle(batches)
    return batches


def forward_pair_batch(model: torch.nn.Module, data: EncodedPairs, idx: list[int], pad_id: int,
                       device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards for chosen and rejected of the pairs ``idx`` in one forward: two tensors ``[b, k]``."""
    seqs = [data.chosen[i] for i in idx] + [data.rejected[i] for i in idx]
    ids, mask = pad_batch(seqs, pad_id)
    rewards = model(ids.to(device), mask.to(device))
    return rewards[: len(idx)], rewards[len(idx) :]


def pair_loss(r_c: torch.Tensor, r_r: torch.Tensor, data: EncodedPairs, idx: list[int], cfg: TrainConfig,
              device) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean BT loss over the batch (averaged over the k heads) and per-pair correctness of head 0."""
    margin = torch.tensor([data.margin[i] for i in idx], device=device).unsqueeze(-1) if cfg.use_margin else 0.0
    weight = torch.tensor([data.weight[i] for i in idx], device=device)
    per_pair = bt_loss(r_c, r_r, margin=margin, centering=cfg.centering, label_smoothing=cfg.label_smoothing)
    loss = (per_pair.mean(-1) * weight).sum() / weight.sum().clamp(min=1e-8)
    return loss, pairwise_correct(r_c[:, 0], r_r[:, 0])


@torch.no_grad()
def evaluate_pairs(model: RewardModel, data: EncodedPairs, pad_id: int, device, batch_size: int = 64) -> dict:
    model.eval()
    correct, losses = [], []
    for idx in make_batches(data, batch_size, seed=0, epoch=0, bucket=True):
        r_c, r_r = forward_pair_batch(model, data, idx, pad_id, device)
        losses.append(bt_loss(r_c[:, 0], r_r[:, 0]))
        correct.append(pairwise_correct(r_c[:, 0], r_r[:, 0]))
    model.train()
    return {"eval_accuracy": torch.cat(correct).mean().item(), "eval_loss": torch.cat(losses).mean().item()}


def _lr_lambda(total_steps: int, warmup: int):
    def f(step: int) -> float:  # linear warmup, then linear decay to 0
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return f


class Checkpointer:
    """Writes ``checkpoints/step-N/`` atomically (temp dir + rename) and keeps the last few."""

    def __init__(self, output: Path, keep: int):
        self.dir = output / "checkpoints"
        self.keep = keep

    def latest(self) -> Path | None:
        done = sorted(self.dir.glob("step-*[0-9]")) if self.dir.exists() else []  # zero-padded: sorts by step
        return done[-1] if done else None

    def save(self, step: int, model, optimizer, scheduler, position: dict[str, Any]) -> None:
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f".tmp-step-{step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        save_state(tmp, "optimizer", optimizer.state_dict())
        save_state(tmp, "rng", rng_state())
        (tmp / "trainer_state.json").write_text(json.dumps({**position, "scheduler": scheduler.state_dict()}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(self.dir.glob("step-*[0-9]"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def restore(path: Path, model, optimizer, scheduler) -> dict[str, Any]:
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        optimizer.load_state_dict(load_state(path, "optimizer"))
        state = json.loads((path / "trainer_state.json").read_text())
        scheduler.load_state_dict(state.pop("scheduler"))
        set_rng_state(load_state(path, "rng"))
        return state


def train_loop(model: RewardModel, tokenizer, train: EncodedPairs, cfg: TrainConfig, eval_data: EncodedPairs | None,
               output: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` in place with the BT loss. Returns the final metrics. See the module docstring."""
    from accelerate import Accelerator

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available())
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    steps_per_epoch = len(make_batches(train, cfg.batch_size, cfg.seed, 0, cfg.bucket)) // (world * cfg.grad_accum)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train.chosen)} pairs are too few for batch size {cfg.batch_size} x {world} x "
                         f"{cfg.grad_accum}")
    total_steps = cfg.total_steps(steps_per_epoch)
    epochs = math.ceil(total_steps / steps_per_epoch)

    torch.manual_seed(cfg.seed)
    if cfg.disable_dropout:
        disable_dropout(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, int(cfg.warmup_ratio * total_steps)))
    model, optimizer = accelerator.prepare(model, optimizer)

    ckpt = Checkpointer(output, cfg.keep_checkpoints)
    step, start_epoch, start_batch = 0, 0, 0
    if resume and (last := ckpt.latest()) is not None:
        pos = Checkpointer.restore(last, accelerator.unwrap_model(model), optimizer, scheduler)
        step, start_epoch, start_batch = pos["step"], pos["epoch"], pos["batch"]
        accelerator.print(f"resumed from {last} (step {step})")

    metrics_path = output / "metrics.jsonl"
    log = metrics_path.open("a") if accelerator.is_main_process else None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), disable=not (progress and accelerator.is_main_process))
    final: dict[str, Any] = {}
    model.train()
    with bar:
        task = bar.add_task("train", total=total_steps, completed=step, info="")
        t0, pairs_seen = time.perf_counter(), 0
        for epoch in range(start_epoch, epochs):
            batches = make_batches(train, cfg.batch_size, cfg.seed, epoch, cfg.bucket)
            micro = batches[rank::world][: steps_per_epoch * cfg.grad_accum]
            first = start_batch if epoch == start_epoch else 0
            for b in range(first, len(micro), cfg.grad_accum):
                if step >= total_steps:
                    break
                group = micro[b : b + cfg.grad_accum]
                loss_sum, correct = 0.0, []
                for j, idx in enumerate(group):  # gradient accumulation; sync grads only on the last micro-batch
                    sync = j == len(group) - 1
                    with accelerator.no_sync(model) if not sync else nullcontext():
                        with accelerator.autocast():
                            r_c, r_r = forward_pair_batch(model, train, idx, pad_id, device)
                            loss, ok = pair_loss(r_c, r_r, train, idx, cfg, device)
                        accelerator.backward(loss / len(group))
                    loss_sum += loss.item() / len(group)
                    correct.append(ok)
                    pairs_seen += len(idx)
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                acc = torch.cat(correct).mean().item()
                bar.update(task, completed=step, info=f"loss {loss_sum:.3f} acc {acc:.2f}")
                if log and (step % cfg.log_every == 0 or step == total_steps):
                    rate = pairs_seen * world / max(1e-9, time.perf_counter() - t0)
                    log.write(json.dumps({"step": step, "epoch": epoch, "loss": loss_sum, "accuracy": acc,
                                          "lr": scheduler.get_last_lr()[0], "pairs_per_s": rate}) + "\n")
                    log.flush()
                if cfg.save_every and step % cfg.save_every == 0 and accelerator.is_main_process:
                    ckpt.save(step, accelerator.unwrap_model(model), optimizer, scheduler,
                              {"step": step, "epoch": epoch, "batch": b + cfg.grad_accum})
            if accelerator.is_main_process:
                if eval_data is not None and eval_data.chosen:
                    final = {"epoch": epoch, "step": step,
                             **evaluate_pairs(accelerator.unwrap_model(model), eval_data, pad_id, device)}
                    log.write(json.dumps(final) + "\n")
                    log.flush()
                    bar.console.print(f"epoch {epoch}: eval accuracy {final['eval_accuracy']:.3f}")
                ckpt.save(step, accelerator.unwrap_model(model), optimizer, scheduler,
                          {"step": step, "epoch": epoch + 1, "batch": 0})
            accelerator.wait_for_everyone()
    if log:
        log.close()
    final.update({"steps": step, "train_pairs": len(train.chosen), "world_size": world})
    return final


def data_hash(pairs: list[PreferencePair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.prompt, p.chosen, p.rejected, p.margin, p.weight], sort_keys=True).encode())
    return h.hexdigest()[:16]


def _contents(x: Any) -> list[str]:
    return [x] if isinstance(x, str) else [m["content"] for m in x]


def build_model(cfg: TrainConfig, pairs: list[PreferencePair]) -> tuple[RewardModel, Any]:
    """The model to train from ``cfg.base``: 'tiny' (tokenizer trained on the data), an HF base model directory or
    GGUF file (a fresh head), or a reward model — a rewardlab checkpoint or a transformers / OpenRLHF reward model
    directory — whose trained head is kept and fine-tuned, never replaced. ``model.rendering`` says how its inputs
    are rendered (carried over from a reward model; probed from the tokenizer otherwise)."""
    from rewardlab.data.tokenize import Rendering
    from rewardlab.errors import UserError
    from rewardlab.models.backbone import default_pooling, load_backbone
    from rewardlab.models.checkpoint import MANIFEST, load_reward_model
    from rewardlab.models.hf_import import hf_reward_kind
    from rewardlab.models.reward_model import is_encoder
    from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer

    attn = getattr(cfg, "attn_implementation", None)
    if cfg.base == "tiny":
        texts = [text for p in pairs for x in (p.prompt, p.chosen, p.rejected) for text in _contents(x)]
        tokenizer = train_tiny_tokenizer(texts, vocab_size=cfg.tiny_vocab)
        model = tiny_reward_model(tokenizer, num_outputs=cfg.num_outputs, seed=cfg.seed, n_layer=cfg.tiny_layers,
                                  n_embd=cfg.tiny_embd, n_positions=max(256, cfg.max_length))
        if cfg.pooling or cfg.head != "linear":
            model = RewardModel(model.backbone, cfg.num_outputs, cfg.pooling or "last", cfg.head)
        model.rendering = Rendering.for_tokenizer(tokenizer, decoder=True)
        return model.train(), tokenizer
    if (Path(cfg.base) / MANIFEST).exists() or hf_reward_kind(cfg.base):
        model, tokenizer, manifest = load_reward_model(cfg.base, attn_implementation=attn)
        conflicts = [f"{name} {want!r} (the base has {have!r})" for name, want, have in (
            ("num_outputs", cfg.num_outputs if cfg.num_outputs != 1 else None, model.num_outputs),
            ("pooling", cfg.pooling, model.pooling), ("head", cfg.head if cfg.head != "linear" else None,
                                                       model.head_type)) if want is not None and want != have]
        if conflicts:
            raise UserError(f"--base {cfg.base} is a reward model: its trained head is kept, so "
                            f"{', '.join(conflicts)} cannot apply; use its backbone as a new base instead")
        if model.output_std is not None:  # OpenRLHF's mean/std describe the old head, not the fine-tuned one
            print(f"{cfg.base}: its output normalization (mean {model.output_mean}, std {model.output_std}) is "
                  "dropped for fine-tuning")
            model.output_mean = model.output_std = None
        model.rendering = Rendering.from_dict(manifest["rendering"])
        print(f"continuing from the reward model {cfg.base} (its trained head is kept)")
        return model.train(), tokenizer
    backbone, tokenizer = load_backbone(cfg.base, attn_implementation=attn)
    torch.manual_seed(cfg.seed)
    encoder = is_encoder(backbone.config)
    # decoders: a bias-free head as in transformers' *ForSequenceClassification (exportable; BT is shift-invariant)
    model = RewardModel(backbone, cfg.num_outputs, cfg.pooling or default_pooling(backbone.config), cfg.head,
                        head_bias=encoder, segment_sep_id=tokenizer.sep_token_id if encoder else None)
    model.rendering = Rendering.for_tokenizer(tokenizer, decoder=not encoder)
    return model.train(), tokenizer


def apply_lora(model: RewardModel, cfg: TrainConfig) -> RewardModel:
    """Wrap the backbone with LoRA adapters (peft); the head stays fully trainable."""
    from peft import LoraConfig, get_peft_model

    target = cfg.lora_target if cfg.lora_target == "all-linear" else cfg.lora_target.split(",")
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=target)
    model.backbone = get_peft_model(model.backbone, lora)
    return model


def export_lora(model: RewardModel, output: Path) -> RewardModel:
    """Save the adapter (+ head) under ``output/adapter`` and return the model with LoRA merged into the backbone."""
    adapter = output / "adapter"
    model.backbone.save_pretrained(adapter, safe_serialization=True)
    head = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(adapter / "head.safetensors"))
    model.backbone = model.backbone.merge_and_unload()
    return model


def train_reward_model(pairs: list[PreferencePair], cfg: TrainConfig, eval_pairs: list[PreferencePair] | None = None,
                       resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build, train and save a reward model to ``cfg.output``. Returns the run summary (also in ``run.json``)."""
    from rewardlab.io import write_json_atomic
    from rewardlab.models.checkpoint import save_reward_model

    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    tok_dir = output / "checkpoints" / "tokenizer"
    model, tokenizer = build_model(cfg, pairs)
    if resume and tok_dir.exists():  # the tiny tokenizer is part of the run's state
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    else:
        tokenizer.save_pretrained(tok_dir)
    if cfg.lora_r:
        model = apply_lora(model, cfg)
    train = encode_pairs(pairs, tokenizer, cfg.max_length, cfg.overlong)
    print(f"train data: {train.stats.summary()}")
    evald = encode_pairs(eval_pairs, tokenizer, cfg.max_length, cfg.overlong) if eval_pairs else None
    metrics = train_loop(model, tokenizer, train, cfg, evald, output, resume=resume, progress=progress)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return metrics
    model = model.module if hasattr(model, "module") else model
    if cfg.lora_r:
        model = export_lora(model, output)
    summary = {"config": cfg.to_dict(), "data_hash": data_hash(pairs), "truncation": train.stats.as_dict(),
               "eval_truncation": evald.stats.as_dict() if evald else None, "metrics": metrics}
    save_reward_model(model.float(), tokenizer, output,
                      manifest={"max_length": cfg.max_length, "base": cfg.base, "data_hash": summary["data_hash"],
                                "truncation": summary["truncation"], "metrics": metrics})
    write_json_atomic(output / "run.json", summary)
    return summary
