"""Process reward model training — `rewardlab train --objective prm --data steps.jsonl`, cleanrl-style.

Data: stepwise rows (:mod:`rewardlab.data.stepwise`, TRL's ``{prompt, completions, labels}`` or ProcessBench's
``{problem, steps, label}``), encoded as TRL's ``PRMTrainer`` does (:mod:`rewardlab.data.step_encode`: each step +
``step_separator``, the label on its last token). Each optimizer step minimizes the mean binary cross-entropy over
the labelled step positions of the batch (TRL averages its token-level loss over labelled tokens the same way)::

    L = −(1/|S|) Σ_{(i,j) ∈ S} [ y_ij · log σ(z_ij) + (1 − y_ij) · log(1 − σ(z_ij)) ]

with ``z_ij`` the step logit at step j's last token and ``y_ij ∈ [0, 1]`` its label (soft labels, e.g. Math-Shepherd
Monte Carlo estimates, are allowed). For a 2-label head ``z = logit[1] − logit[0]`` and this equals TRL's 2-class
cross-entropy. Unlabelled steps (ProcessBench's steps after the first error) and steps dropped by truncation are not
in S. ``last_step_only`` keeps only each solution's last step in S for training (TRL's
``train_on_last_step_only``; evaluation still uses every step); a solution whose last step is unlabelled or dropped
then has no target and is left out (counted).

Bases: ``tiny`` (a tokenizer trained on the data + a random tiny GPT-2), an HF base model directory (``AutoModel`` +
a fresh linear head), or a PRM to fine-tune (a rewardlab PRM or a transformers ``*ForTokenClassification`` dir: its
head is kept). The loop is :mod:`rewardlab.train.engine`'s (:class:`StepObjective`), as for BT: checkpoints (model,
optimizer, scheduler, RNG, data position — pickle-free), the run-identity check on ``--resume``, the epoch plan of
:mod:`rewardlab.train.batches`, and ``accelerate`` for devices and precision. The output is a PRM checkpoint:
``model.safetensors`` (backbone + head), tokenizer, and ``rewardlab.json`` with ``"kind": "prm"`` and the step format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rewardlab.data.batching import pad_batch
from rewardlab.data.step_encode import StepEncoder, StepFormat, StepTruncation
from rewardlab.data.stepwise import StepwiseExample
from rewardlab.errors import UserError
from rewardlab.models.backbone import disable_dropout
from rewardlab.models.prm import ProcessRewardModel
from rewardlab.train.batches import EpochPlan, steps_per_epoch
from rewardlab.train.config import Problem, TrainConfig, opt
from rewardlab.train.engine import Engine, Loop, Objective
from rewardlab.train.rundir import check_run_output, clear_run, run_identity
from rewardlab.train.trainer import enable_gradient_checkpointing

BT_ONLY = ("centering", "label_smoothing", "use_margin", "pooling", "num_outputs", "lora_r", "head", "drop_ties",
           "overlong")


@dataclass
class PRMConfig(TrainConfig):
    step_separator: str = opt("\n", "prm: text after each step, where it is scored (TRL's step_separator; the escapes "
                              "\\n and \\t are decoded)")
    last_step_only: bool = opt(False, "prm: train on each solution's last step only (TRL's train_on_last_step_only)")
    max_length: int = 1024  # TRL PRMConfig.max_length

    def __post_init__(self) -> None:
        if isinstance(self.step_separator, str):
            self.step_separator = self.step_separator.replace("\\n", "\n").replace("\\t", "\t")

    def problems(self) -> list[Problem]:
        problems = super().problems()
        if not self.step_separator:
            problems.append(("step_separator", "must be a non-empty string"))
        defaults = TrainConfig()
        problems += [(k, "does not apply to --objective prm") for k in BT_ONLY
                     if getattr(self, k) != getattr(defaults, k)]
        return problems

    @property
    def step_format(self) -> StepFormat:
        return StepFormat(self.step_separator)


def prm_bce_loss(step_logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE over labelled positions: ``step_logits``, ``targets`` ``[b, t]``, targets NaN where there is no
    label. Returns ``(loss, labelled)`` with ``labelled`` the boolean mask; the loss is 0 (with a graph) when no
    position is labelled."""
    labelled = ~torch.isnan(targets)
    if not bool(labelled.any()):
        return step_logits.sum() * 0.0, labelled
    loss = F.binary_cross_entropy_with_logits(step_logits[labelled].float(), targets[labelled].float())
    return loss, labelled


@dataclass
class EncodedStepData:
    """Encoded solutions: ids, read positions, and a target per position (NaN: not trained on)."""

    ids: list[list[int]]
    ends: list[list[int]]
    targets: list[list[float]]
    stats: StepTruncation
    no_target: int
    data_hash: str

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def encode_step_data(examples: Sequence[StepwiseExample], encoder: StepEncoder,
                     last_step_only: bool = False) -> EncodedStepData:
    """Encode labelled examples (see the module docstring for which steps get a target)."""
    h = hashlib.sha256(json.dumps([encoder.fmt.to_dict(), encoder.max_length, last_step_only]).encode())
    ids, ends, targets, no_target = [], [], [], 0
    for ex in examples:
        if ex.step_labels is None:
            raise UserError(f"{ex.source or 'data'}: field 'labels' missing (training needs one label per step)")
        h.update(json.dumps([ex.prompt, ex.steps, ex.step_labels], sort_keys=True).encode())
        enc = encoder.encode(ex.prompt, ex.steps)
        y = [math.nan if v is None else float(v) for v in ex.step_labels[: len(enc.ends)]]
        if last_step_only:
            last = len(ex.steps) - 1
            y = [v if j == last else math.nan for j, v in enumerate(y)]
        if all(math.isnan(v) for v in y):
            no_target += 1
            continue
        ids.append(enc.ids)
        ends.append(enc.ends)
        targets.append(y)
    return EncodedStepData(ids, ends, targets, encoder.stats, no_target, h.hexdigest()[:16])


def batch_tensors(data: EncodedStepData, idx: list[int], pad_id: int) -> tuple[torch.Tensor, ...]:
    """``(input_ids, attention_mask, targets)`` for examples ``idx``, right-padded; targets ``[b, t]`` NaN except at
    the labelled step ends."""
    ids, mask = pad_batch([data.ids[i] for i in idx], pad_id)
    targets = torch.full(ids.shape, math.nan)
    for row, i in enumerate(idx):
        targets[row, data.ends[i]] = torch.tensor(data.targets[i])
    return ids, mask, targets


@torch.no_grad()
def evaluate_steps(model: ProcessRewardModel, data: EncodedStepData, pad_id: int, device,
                   batch_size: int = 32) -> dict[str, float]:
    """Step accuracy (σ(z) ≥ 0.5 vs label ≥ 0.5) and mean BCE over every labelled step."""
    was = model.training
    model.eval()
    loss_sum, n, correct = 0.0, 0, 0
    for start in range(0, len(data), batch_size):
        ids, mask, y = batch_tensors(data, list(range(start, min(start + batch_size, len(data)))), pad_id)
        z = model(ids.to(device), mask.to(device)).cpu()
        loss, lab = prm_bce_loss(z, y)
        loss_sum += loss.item() * int(lab.sum())
        n += int(lab.sum())
        correct += int(((z[lab] >= 0) == (y[lab] >= 0.5)).sum())
    model.train(was)
    return {"eval_step_accuracy": correct / max(1, n), "eval_loss": loss_sum / max(1, n), "eval_steps": n}


class StepObjective(Objective):
    """The PRM objective: batches of solutions, the BCE over their labelled steps (:func:`prm_bce_loss`), the step
    accuracy (σ(z) ≥ 0.5 vs label ≥ 0.5), and :func:`evaluate_steps` at each epoch's end."""

    name, unit, rate_key = "prm", "solutions", "solutions_per_s"
    shown, eval_shown = ("step_accuracy", "step-acc"), ("eval_step_accuracy", "eval step accuracy")

    def __init__(self, train: EncodedStepData, eval_data: EncodedStepData | None, cfg: PRMConfig, pad_id: int):
        self.train, self.eval_data, self.cfg, self.pad_id = train, eval_data, cfg, pad_id
        self.lengths = train.lengths()

    def plan(self, epoch: int, world: int) -> EpochPlan:
        return EpochPlan.build(self.lengths, self.cfg.batch_size, self.cfg.seed, epoch, self.cfg.bucket, world)

    def loss(self, model: torch.nn.Module, idx: list[int], device) -> tuple[torch.Tensor, tuple[int, int]]:
        ids, mask, y = batch_tensors(self.train, idx, self.pad_id)
        y = y.to(device)
        z = model(ids.to(device), mask.to(device))
        loss, lab = prm_bce_loss(z, y)
        return loss, (int(((z.detach()[lab] >= 0) == (y[lab] >= 0.5)).sum()), int(lab.sum()))

    def metrics(self, stats: list[tuple[int, int]]) -> dict[str, float]:
        return {"step_accuracy": sum(h for h, _ in stats) / max(1, sum(n for _, n in stats))}

    def evaluate(self, model: torch.nn.Module, accelerator) -> dict[str, float] | None:
        if self.eval_data is None or not len(self.eval_data):
            return None
        return evaluate_steps(model, self.eval_data, self.pad_id, accelerator.device)


def build_prm(cfg: PRMConfig, examples: Sequence[StepwiseExample], tokenizer=None) -> tuple[ProcessRewardModel, Any]:
    """The model to train from ``cfg.base`` (see the module docstring); ``tokenizer`` reuses a saved tiny one."""
    from rewardlab.data.tokenize import Rendering
    from rewardlab.models.device import read_chat_template
    from rewardlab.models.formats import CHECKPOINT, PRM

    template = read_chat_template(cfg.chat_template)
    attn = cfg.attn_implementation
    if cfg.base == "tiny":
        from transformers import GPT2Model

        from rewardlab.models.tiny import tiny_gpt2_config, train_tiny_tokenizer

        if tokenizer is None:
            texts = (t for ex in examples for t in ([ex.prompt] if isinstance(ex.prompt, str) else
                                                   [m["content"] for m in ex.prompt]) + ex.steps)
            tokenizer = train_tiny_tokenizer(texts, vocab_size=cfg.tiny_vocab)
        torch.manual_seed(cfg.seed)
        backbone = GPT2Model(tiny_gpt2_config(tokenizer, n_layer=cfg.tiny_layers, n_embd=cfg.tiny_embd,
                                              n_positions=max(256, cfg.max_length)))
        model = ProcessRewardModel(backbone)
    elif PRM.detect(Path(cfg.base)):
        model, tokenizer, _ = PRM.load(cfg.base, attn_implementation=attn)
        print(f"continuing from the PRM {cfg.base} (its trained head is kept)")
    elif CHECKPOINT.detect(Path(cfg.base)):
        raise UserError(f"--base {cfg.base}: a pairwise reward-model checkpoint, not a PRM; train a PRM from its base "
                        "model, an HF model directory, or 'tiny'")
    else:
        from rewardlab.models.backbone import load_backbone

        backbone, tokenizer = load_backbone(cfg.base, attn_implementation=attn)
        torch.manual_seed(cfg.seed)
        model = ProcessRewardModel(backbone)
    model.rendering = Rendering.for_tokenizer(tokenizer, decoder=not model.encoder, chat_template=template)
    return model.train(), tokenizer


def train_prm(examples: Sequence[StepwiseExample], cfg: PRMConfig,
              eval_examples: Sequence[StepwiseExample] | None = None, resume: bool = False, overwrite: bool = False,
              progress: bool = True, skipped_report: Path | None = None) -> dict[str, Any]:
    """Build, train and save a PRM to ``cfg.output``; returns the run summary (also ``run.json``). The output
    directory is checked first and created (or cleared, with ``overwrite``) only once the data is encoded."""
    from rewardlab.io import write_json_atomic
    from rewardlab.models.checkpoint import save_reward_model

    output = check_run_output(cfg.output, resume=resume, overwrite=overwrite)
    cfg = dataclasses.replace(cfg, lr=cfg.resolved_lr())
    engine = Engine(Loop.from_config(cfg), "prm", output, resume, progress)  # refuses a precision we lack
    if engine.world > 1:
        raise UserError("--objective prm trains in one process (no `accelerate launch` data parallelism yet)")
    tok_dir = output / "checkpoints" / "tokenizer"
    saved_tok = None
    if resume and cfg.base == "tiny" and tok_dir.exists():
        from transformers import AutoTokenizer

        saved_tok = AutoTokenizer.from_pretrained(tok_dir)
    model, tokenizer = build_prm(cfg, examples, saved_tok)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model.backbone, cfg.base)

    def encoder() -> StepEncoder:
        return StepEncoder(tokenizer, cfg.max_length, cfg.step_format, decoder=not model.encoder,
                           chat_template=model.rendering.chat_template)

    train = encode_step_data(examples, encoder(), cfg.last_step_only)
    print(f"train data: {train.stats.summary()}; {train.no_target} solutions without a trainable label left out")
    evald = encode_step_data(eval_examples, encoder()) if eval_examples else None
    steps_per_epoch(len(train), cfg.batch_size, cfg.grad_accum, 1, "data")
    if overwrite:
        clear_run(output)
    output.mkdir(parents=True, exist_ok=True)
    if not tok_dir.exists():
        tokenizer.save_pretrained(tok_dir)
    if skipped_report is not None and Path(skipped_report).exists():
        shutil.move(skipped_report, output / "skipped.txt")
    if cfg.disable_dropout:
        disable_dropout(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    result = engine.fit(StepObjective(train, evald, cfg, pad_id), model, run_identity(cfg, train.data_hash, 1))
    final = {**result.final, "steps": result.step, "train_solutions": len(train), "solutions_seen": result.seen}
    summary = {"config": cfg.to_dict(), "data_hash": train.data_hash, "truncation": train.stats.as_dict(),
               "no_target": train.no_target, "eval_truncation": evald.stats.as_dict() if evald else None,
               "metrics": final}
    save_reward_model(engine.accelerator.unwrap_model(model).float(), tokenizer, output, manifest={
        "kind": "prm", "steps": cfg.step_format.to_dict(), "last_step_only": cfg.last_step_only,
        "max_length": cfg.max_length, "base": cfg.base, "data_hash": train.data_hash,
        "truncation": summary["truncation"], "metrics": final})
    write_json_atomic(output / "run.json", summary)
    return summary


def train_prm_command(data: Path, eval_data: Path | None, cfg: PRMConfig, split: str | None = None,
                      resume: bool = False, overwrite: bool = False, skip_invalid: bool = False,
                      eval_split: str | None = None) -> dict[str, Any]:
    """What `rewardlab train --objective prm` runs once its config is built: load and validate every row (labels
    required), train, print the result."""
    import tempfile

    from rewardlab.data.stepwise import load_stepwise

    tmp = Path(tempfile.mkdtemp(prefix="rewardlab-skipped-"))
    try:
        examples = load_stepwise(data, split=split, skip_invalid=skip_invalid, skipped_report=tmp / "skipped.txt",
                                 require_labels=True, separator=cfg.step_separator)
        evals = load_stepwise(eval_data, split=eval_split or split, require_labels=True) if eval_data else None
        summary = train_prm(examples, cfg, evals, resume=resume, overwrite=overwrite,
                            skipped_report=tmp / "skipped.txt")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = summary["metrics"]
    if "eval_step_accuracy" in m:
        print(f"eval step accuracy {m['eval_step_accuracy']:.4f} over {m['eval_steps']} labelled steps")
    print(f"saved PRM to {cfg.output} (reward spec: prm:{cfg.output}:min)")
    return summary
