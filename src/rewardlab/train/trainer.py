"""Bradley–Terry reward-model training: the pair objective of :mod:`rewardlab.train.engine`, whose loop
runs on `accelerate` (``accelerate launch`` gives DDP/FSDP/DeepSpeed) and checkpoints, resumes, logs and evaluates.

Each step scores chosen and rejected in **one** forward pass (``[2b, t]``), in length-bucketed batches, and minimizes
the weighted mean BT loss (:func:`rewardlab.train.losses.bt_loss`). Every pair is seen every epoch: the last
accumulation step of an epoch may hold fewer micro-batches (its loss is averaged over those), see
:mod:`rewardlab.train.batches`; ``pairs_seen`` in the metrics counts what was actually trained on. Checkpoints hold
model, optimizer, scheduler and RNG states (pickle-free) and the data position, so a killed run resumes to the same
weights, and ``--resume`` with a larger ``--max-steps`` continues to the new total.

Order of work in :func:`train_reward_model`: check the output directory (:mod:`rewardlab.train.rundir`), build the
model, tokenize (one streaming pass; :mod:`rewardlab.train.encode`), check there is at least one batch per process —
and only then create or clear the output directory.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.batching import pad_batch
from rewardlab.data.records import PreferencePair
from rewardlab.errors import UserError
from rewardlab.io import save_safetensors
from rewardlab.models.backbone import disable_dropout
from rewardlab.models.packing import pack, packing_decision
from rewardlab.models.reward_model import RewardModel
from rewardlab.train.batches import EpochPlan, make_batches, steps_per_epoch
from rewardlab.train.config import TrainConfig
from rewardlab.train.encode import EncodedPairs, encode_pairs
from rewardlab.train.engine import Engine, Loop, Objective
from rewardlab.train.losses import bt_loss, pairwise_correct
from rewardlab.train.rundir import check_run_output, clear_run, run_identity


def forward_pair_batch(model: torch.nn.Module, data: EncodedPairs, idx: list[int], pad_id: int,
                       device, packed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards for chosen and rejected of the pairs ``idx`` in one forward: two tensors ``[b, k]``. ``packed``:
    prompt-shared rows (:func:`rewardlab.models.packing.pack`; each prompt encoded once, exact), else one padded
    row per sequence."""
    seqs = [data.chosen[i] for i in idx] + [data.rejected[i] for i in idx]
    if packed:
        skip = getattr(model.module if hasattr(model, "module") else model, "skip_token_id", None)
        # a row per prompt ([prompt | chosen | rejected], more when pairs share a prompt), groups of at most two of
        # the batch's longest sequences: filling rows with several groups would grow the attention kept for
        # backward with the square of the row
        width = 2 * max(len(s) for s in seqs)
        rewards = model(packed=pack(seqs, pad_id, width, skip_token_id=skip, fill=False).to(device))
    else:
        ids, mask = pad_batch(seqs, pad_id)
        rewards = model(ids.to(device), mask.to(device))
    return rewards[: len(idx)], rewards[len(idx) :]


def pair_loss(r_c: torch.Tensor, r_r: torch.Tensor, data: EncodedPairs, idx: list[int], cfg: TrainConfig,
              device) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean BT loss over the batch (averaged over the k heads) and per-pair correctness of head 0."""
    margin = (torch.as_tensor(data.margin[idx], dtype=torch.float32, device=device).unsqueeze(-1)
              if cfg.use_margin else 0.0)
    weight = torch.as_tensor(data.weight[idx], dtype=torch.float32, device=device)
    per_pair = bt_loss(r_c, r_r, margin=margin, centering=cfg.centering, label_smoothing=cfg.label_smoothing)
    loss = (per_pair.mean(-1) * weight).sum() / weight.sum().clamp(min=1e-8)
    return loss, pairwise_correct(r_c[:, 0], r_r[:, 0])


@torch.no_grad()
def evaluate_pairs(model: RewardModel, data: EncodedPairs, pad_id: int, device, batch_size: int = 64,
                   packed: bool = False) -> dict:
    model.eval()
    correct, losses = [], []
    for idx in make_batches(data.lengths(), batch_size, seed=0, epoch=0, bucket=True):
        r_c, r_r = forward_pair_batch(model, data, idx, pad_id, device, packed)
        losses.append(bt_loss(r_c[:, 0], r_r[:, 0]))
        correct.append(pairwise_correct(r_c[:, 0], r_r[:, 0]))
    model.train()
    return {"eval_accuracy": torch.cat(correct).mean().item(), "eval_loss": torch.cat(losses).mean().item()}


@torch.no_grad()
def eval_normalization(model: RewardModel, data: EncodedPairs, pad_id: int, batch_size: int = 64) -> dict | None:
    """The manifest's ``normalization`` from the rewards of every eval response, chosen and rejected
    (:func:`rewardlab.models.normalization.normalization_record`); None, with a note, when they cannot standardize."""
    from rewardlab.models.normalization import normalization_record

    device = next(model.parameters()).device
    model.eval()
    scores = torch.cat([torch.cat(forward_pair_batch(model, data, idx, pad_id, device)).float().cpu()
                        for idx in make_batches(data.lengths(), batch_size, seed=0, epoch=0, bucket=True)])
    source = {"eval_split": {"data_hash": data.data_hash, "responses": 2 * len(data)}}
    try:
        return normalization_record(scores.squeeze(-1) if scores.shape[1] == 1 else scores, source, "eval split")
    except UserError as e:
        print(f"no normalization stats recorded: {e}")
        return None


class PairObjective(Objective):
    """The BT objective: batches of pairs (:class:`~rewardlab.train.batches.EpochPlan`), the weighted BT loss, the
    pairwise accuracy of head 0, and the eval accuracy and loss at each epoch's end."""

    name, unit, rate_key = "train", "pairs", "pairs_per_s"
    shown, eval_shown = ("accuracy", "acc"), ("eval_accuracy", "eval accuracy")

    def __init__(self, train: EncodedPairs, eval_data: EncodedPairs | None, cfg: TrainConfig, pad_id: int,
                 packed: bool = False):
        self.train, self.eval_data, self.cfg, self.pad_id, self.packed = train, eval_data, cfg, pad_id, packed
        self.lengths = train.lengths()

    def plan(self, epoch: int, world: int) -> EpochPlan:
        cfg = self.cfg
        return EpochPlan.build(self.lengths, cfg.batch_size, cfg.seed, epoch, cfg.bucket, world)

    def loss(self, model: torch.nn.Module, idx: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
        r_c, r_r = forward_pair_batch(model, self.train, idx, self.pad_id, device, self.packed)
        return pair_loss(r_c, r_r, self.train, idx, self.cfg, device)

    def metrics(self, stats: list[torch.Tensor]) -> dict[str, float]:
        return {"accuracy": torch.cat(stats).mean().item()}

    def evaluate(self, model: torch.nn.Module, accelerator) -> dict[str, float] | None:
        if self.eval_data is None or not len(self.eval_data):
            return None
        return evaluate_pairs(model, self.eval_data, self.pad_id, accelerator.device, packed=self.packed)


def train_loop(model: RewardModel, tokenizer, train: EncodedPairs, cfg: TrainConfig, eval_data: EncodedPairs | None,
               output: Path, resume: bool = False, progress: bool = True,
               engine: Engine | None = None) -> dict[str, Any]:
    """Train ``model`` in place with the BT loss (on ``engine``, else a new one). Returns the final metrics."""
    engine = engine or Engine(Loop.from_config(cfg), "bt", output, resume, progress)
    if cfg.disable_dropout:
        disable_dropout(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    packed = packing_decision(model, cfg.max_length, cfg.packing)
    result = engine.fit(PairObjective(train, eval_data, cfg, pad_id, packed), model,
                        run_identity(cfg, train.data_hash, engine.world))
    return {**result.final, "steps": result.step, "train_pairs": len(train), "pairs_seen": result.seen,
            "world_size": result.world}


def enable_gradient_checkpointing(backbone: torch.nn.Module, base: str) -> None:
    """Recompute a transformers model's layer activations in backward (``use_reentrant=False``, which needs no input
    grads and works with LoRA): less activation memory for ~⅓ more compute; losses and gradients are unchanged."""
    if not getattr(backbone, "supports_gradient_checkpointing", False):
        raise UserError(f"--gradient-checkpointing: the backbone of {base} does not support it")
    kwargs = {"use_reentrant": False}
    if getattr(backbone.config, "use_cache", None):  # a KV cache is useless in training and warns under checkpointing
        backbone.config.use_cache = False
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name is deprecated
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _contents(x: Any) -> list[str]:
    return [x] if isinstance(x, str) else [m["content"] for m in x]


def build_model(cfg: TrainConfig, pairs: list[PreferencePair]) -> tuple[RewardModel, Any]:
    """The model to train from ``cfg.base``: 'tiny' (tokenizer trained on the data), an HF base model directory or
    GGUF file (a fresh head), or a reward model — a rewardlab checkpoint or a transformers / OpenRLHF reward model
    directory — whose trained head is kept and fine-tuned, never replaced. ``model.rendering`` says how its inputs
    are rendered (carried over from a reward model; probed from the tokenizer otherwise; ``cfg.chat_template``
    replaces the chat template)."""
    from rewardlab.models.device import read_chat_template
    from rewardlab.models.formats.base import with_chat_template

    template = read_chat_template(getattr(cfg, "chat_template", None))  # a bad file fails before any loading
    model, tokenizer = _build(cfg, pairs, getattr(cfg, "attn_implementation", None))
    model.rendering = with_chat_template(model.rendering, template)
    return model, tokenizer


def _build(cfg: TrainConfig, pairs, attn: str | None) -> tuple[RewardModel, Any]:
    from rewardlab.data.tokenize import Rendering
    from rewardlab.errors import UserError
    from rewardlab.hub import local_model_path
    from rewardlab.models.backbone import default_pooling, load_backbone
    from rewardlab.models.formats import load_reward_model, pooled_format
    from rewardlab.models.reward_model import is_encoder
    from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer

    if cfg.base == "tiny":
        texts = (text for p in pairs for x in (p.prompt, p.chosen, p.rejected) for text in _contents(x))
        tokenizer = train_tiny_tokenizer(texts, vocab_size=cfg.tiny_vocab)
        model = tiny_reward_model(tokenizer, num_outputs=cfg.num_outputs, seed=cfg.seed, n_layer=cfg.tiny_layers,
                                  n_embd=cfg.tiny_embd, n_positions=max(256, cfg.max_length))
        if cfg.pooling or cfg.head != "linear":
            model = RewardModel(model.backbone, cfg.num_outputs, cfg.pooling or "last", cfg.head)
        model.rendering = Rendering.for_tokenizer(tokenizer, decoder=True)
        return model.train(), tokenizer
    base = local_model_path(cfg.base)  # a hub id: its snapshot, so a hub reward model keeps its head
    if pooled_format(base) is not None:  # a rewardlab checkpoint or an imported reward model (models.formats)
        model, tokenizer, _ = load_reward_model(base, attn_implementation=attn)
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
        print(f"continuing from the reward model {cfg.base} (its trained head is kept)")
        return model.train(), tokenizer
    backbone, tokenizer = load_backbone(base, attn_implementation=attn)
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
    save_safetensors(head, adapter / "head.safetensors")
    model.backbone = model.backbone.merge_and_unload()
    return model


def train_reward_model(pairs: Iterable[PreferencePair], cfg: TrainConfig,
                       eval_pairs: Iterable[PreferencePair] | None = None, resume: bool = False,
                       progress: bool = True, overwrite: bool = False, skipped_report: Path | None = None,
                       origin: str = "data") -> dict[str, Any]:
    """Build, train and save a reward model to ``cfg.output``. Returns the run summary (also in ``run.json``).

    ``pairs`` may be any iterable (e.g. a file read row by row) and is iterated once: streamed into the token store,
    or, for ``base="tiny"``, first held in a list (the tokenizer is trained on their texts before they are encoded).
    ``overwrite`` clears a used output directory,
    ``resume`` continues its run (see :mod:`rewardlab.train.rundir`); ``skipped_report`` (a file listing skipped
    rows) is moved to ``OUTPUT/skipped.txt`` once the output exists; ``origin`` names the data in errors.
    """
    from rewardlab.io import write_json_atomic
    from rewardlab.models.card import write_train_card
    from rewardlab.models.checkpoint import save_reward_model

    output = check_run_output(cfg.output, resume=resume, overwrite=overwrite)
    lr_default = cfg.lr is None
    cfg = dataclasses.replace(cfg, lr=cfg.resolved_lr())
    engine = Engine(Loop.from_config(cfg), "bt", output, resume, progress)  # refuses a precision we lack
    state = engine.accelerator
    tok_dir = output / "checkpoints" / "tokenizer"
    if cfg.base == "tiny" and not isinstance(pairs, list):
        pairs = list(pairs)  # read once, used twice: the tokenizer's training texts, then the encoded pairs
    model, tokenizer = build_model(cfg, pairs)
    if resume and tok_dir.exists():  # the tiny tokenizer is part of the run's state
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model.backbone, cfg.base)
    if cfg.lora_r:
        model = apply_lora(model, cfg)
    rendering = getattr(model, "rendering", None)
    train = encode_pairs(pairs, tokenizer, cfg.max_length, cfg.overlong, cfg.drop_ties, rendering=rendering)
    print(f"train data: {train.stats.summary()}; {train.counts.summary()}")
    evald = (encode_pairs(eval_pairs, tokenizer, cfg.max_length, cfg.overlong, drop_ties=False,
                          rendering=rendering) if eval_pairs is not None else None)
    if evald is not None and evald.counts.ties:
        print(f"eval data: {evald.counts.ties} pairs tied after truncation (kept; a tie counts as wrong)")
    steps_per_epoch(len(train), cfg.batch_size, cfg.grad_accum, state.num_processes, origin)
    state.wait_for_everyone()  # every process has checked the output before the main one writes into it
    if state.is_main_process:
        if overwrite:
            clear_run(output)
        output.mkdir(parents=True, exist_ok=True)
        if not (resume and tok_dir.exists()):
            tokenizer.save_pretrained(tok_dir)
        if skipped_report is not None and Path(skipped_report).exists():
            shutil.move(skipped_report, output / "skipped.txt")  # may cross file systems (a temp dir)
            print(f"the skipped rows are listed in {output / 'skipped.txt'}")
    state.wait_for_everyone()
    metrics = train_loop(model, tokenizer, train, cfg, evald, output, engine=engine)
    if not state.is_main_process:
        return metrics
    model = model.module if hasattr(model, "module") else model
    if cfg.lora_r:
        model = export_lora(model, output)
    pair_counts = {"train": train.counts.as_dict(), "eval": evald.counts.as_dict() if evald else None}
    summary = {"config": cfg.to_dict(), "lr_default": lr_default, "data_hash": train.data_hash, "pairs": pair_counts,
               "truncation": train.stats.as_dict(), "eval_truncation": evald.stats.as_dict() if evald else None,
               "metrics": metrics}
    model = model.float()
    norm = (eval_normalization(model, evald, tokenizer.pad_token_id or 0) if cfg.eval_normalization and evald
            else None)
    save_reward_model(model, tokenizer, output,
                      manifest={"max_length": cfg.max_length, "base": cfg.base, "data_hash": train.data_hash,
                                "truncation": summary["truncation"], "pairs": pair_counts, "metrics": metrics,
                                **({"normalization": norm} if norm else {})})
    write_json_atomic(output / "run.json", summary)
    write_train_card(output, cfg.base, "Bradley–Terry", summary)  # README.md: what it is, metrics, how to load
    return summary
