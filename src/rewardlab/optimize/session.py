"""One optimize run's set-up and tear-down, written once (:class:`Session`): policy, frozen reference, optimizer,
sampling engine, gold tracking (:mod:`rewardlab.optimize.gold`), run directory (metrics JSONL, checkpoints, resume),
final policy and summary.

A loop (``rloo.py``, ``raft.py``, ``dpo.py``) reads top to bottom::

    s = Session(policy, tokenizer, reward, prompts, args, gold=gold, output_dir=out)
    for step in range(s.start, args.steps):
        s.maybe_evaluate(step)
        ...sample, score, update...            # the algorithm, every equation visible
        s.log(step, {...}); s.maybe_checkpoint(step + 1)
    return s.finish()

Reproducibility: dropout is disabled in the policy, and every random choice (prompt batch, sampling, minibatch
order) is seeded from ``(args.seed, step)``, so a resumed run continues exactly as an uninterrupted one would.

Precision (``args.dtype``, :func:`rewardlab.models.device.resolve_dtype`; ``auto`` = fp32 on CPU): the policy keeps
fp32 master weights and the optimizer updates them; sampling and log-prob forwards run under ``torch.autocast`` in
the chosen dtype (:meth:`Session.amp`), the frozen references are stored in it, and fp16 losses go through a
gradient scaler (:meth:`Session.update`). In fp32 nothing changes.

Sampling engine (``args.engine``, :mod:`rewardlab.models.engines`): every sample of the policy (rollouts, gold-tracking
evaluations, calibration) goes through :meth:`Session.sample_policy`. With ``vllm`` the engine holds a copy of the
policy's weights, refreshed there whenever an update changed them (every step of RLOO/GRPO, every iteration of RAFT
and online DPO; LoRA: the merged weights); the losses' log-probs are always torch's, so vLLM's samples stand for the
policy's: the same distribution up to the two engines' float rounding (fp32: the same greedy tokens).

LoRA (``args.lora_r > 0``): only a fresh adapter is trained, and π₀ is the policy with the adapter disabled instead
of a frozen copy; ``policy/`` is saved merged (memory saved, saving, resume: :mod:`rewardlab.optimize.lora`).

Prompt length: prompts keep their last ``max_prompt_length`` tokens (None: what fits the policy with
``max_new_tokens``, :func:`rewardlab.models.generation.prompt_length_cap`); the summary records the cap and how many
prompts it truncated (``max_prompt_length``, ``truncated_prompts``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt
from rewardlab.errors import UserError
from rewardlab.evaluate.plots import plotting
from rewardlab.io import write_json_atomic, write_jsonl_atomic
from rewardlab.models.backbone import disable_dropout  # RL log-probs must not depend on a dropout mask
from rewardlab.models.device import resolve_dtype
from rewardlab.models.engines import policy_sampler
from rewardlab.models.generation import Rollout, count_truncated, prompt_length_cap, sample
from rewardlab.optimize.common import LoopArgs, autocast, frozen_copy, prompt_batch, reward_metrics, step_seed
from rewardlab.optimize.gold import GoldTracker, plot_overoptimization
from rewardlab.optimize.lora import (
    AdapterOff,
    attach_lora,
    load_adapter,
    merged_state_dict,
    save_adapter,
    save_merged,
)
from rewardlab.optimize.progress import RunProgress
from rewardlab.rewards.base import Reward
from rewardlab.rewards.shaping import calibrate
from rewardlab.tracking import RunTracker
from rewardlab.train.state import load_state, save_state


class Session:
    """Set-up and tear-down of one optimize run (see the module docstring)."""

    def __init__(self, policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: LoopArgs,
                 gold: Reward | None = None, output_dir: str | os.PathLike | None = None, name: str = "run",
                 fit_form: str = "rl", progress: bool = True):
        self.policy, self.tokenizer, self.reward, self.gold, self.args = policy, tokenizer, reward, gold, args
        self.prompts, self.name, self.fit_form = list(prompts), name, fit_form
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.out = Path(output_dir) if output_dir is not None else None
        self.device = next(policy.parameters()).device
        self.dtype = resolve_dtype(args.dtype, self.device)
        self.max_prompt_length = prompt_length_cap(policy, args.max_new_tokens, args.max_prompt_length)
        self.truncated_prompts = count_truncated(tokenizer, self.prompts, self.max_prompt_length)
        disable_dropout(policy)
        self.closing = contextlib.ExitStack()  # the sampling engine, shut down by finish()
        self.draw = self.closing.enter_context(policy_sampler(args.engine, policy, tokenizer, self.dtype))
        self.weights_version = self.synced_version = 0  # updates (and checkpoint loads) so far / held by the engine
        self.lora = attach_lora(policy, args.lora_r, args.lora_alpha, args.lora_target) if args.lora_r else None
        # π₀, the KL reference for the penalty and for gold tracking: a frozen copy, or (LoRA) the adapter switched off
        self.ref = self.frozen(policy) if self.lora is None else AdapterOff(policy, self.lora)
        self.trainable = [p for p in policy.parameters() if p.requires_grad]  # with LoRA: the adapter's
        self.optimizer = torch.optim.AdamW(self.trainable, lr=args.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.tracker = GoldTracker(self.prompts[: args.eval_prompts], reward, gold, args.eval_samples,
                                   args.max_new_tokens, args.temperature, args.top_p, args.seed, args.batch_size,
                                   self.max_prompt_length,
                                   functools.partial(autocast, self.device, self.dtype))  # not self.amp: no cycle
        self.tracking = RunTracker(args.report_to, self.out, name, asdict(args))  # refuses a missing package now
        self.rows: list[dict] = []
        self.reward_info: dict[str, Any] = {}  # what the reward said of the last rollout's batch (reward_metrics)
        self.warnings: list[str] = []  # said at the end of the run and kept in summary.json
        self.start = 0
        self.t0 = time.perf_counter()
        for r in (reward, gold):
            if r is not None and callable(getattr(r, "calibrate", None)):
                with self.amp():
                    ro = self.sample_policy(self.ref, tokenizer, self.prompts, args.calibration_samples,
                                            args.max_new_tokens, args.temperature, args.top_p,
                                            step_seed(args.seed, 0, 3), args.batch_size, self.max_prompt_length)
                calibrate(r, ro.prompts, ro.responses)
        if args.resume and self.out is not None and (self.out / "checkpoint" / "state.json").exists():
            self._load_checkpoint()
        elif self.out is not None:
            (self.out / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log
        self.tracking.purge_step = self.start  # tensorboard hides what an earlier run logged from here on
        for row in self.rows:  # a resumed run's kept rows from its start (the evaluation there) are not logged again
            if row["step"] >= self.start:
                self.tracking.log(row)
        self.progress = RunProgress(name, args.steps, start=self.start, enabled=progress, t0=self.t0)

    # -- precision ---------------------------------------------------------------------------------------------
    def amp(self) -> AbstractContextManager:
        """The context every policy/reference forward runs in: autocast to ``self.dtype`` (a no-op in fp32)."""
        return autocast(self.device, self.dtype)

    def frozen(self, model: torch.nn.Module) -> torch.nn.Module:
        """A frozen reference copy of ``model`` stored in ``self.dtype``."""
        return frozen_copy(model, None if self.dtype == torch.float32 else self.dtype)

    def update(self, loss: torch.Tensor) -> float:
        """One optimizer step on ``loss``: backward (scaled in fp16), clip to ``max_grad_norm``, step; returns the
        gradient norm before clipping."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.args.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.weights_version += 1
        return float(norm)

    # -- sampling ------------------------------------------------------------------------------------------------
    def sample_policy(self, model, tokenizer, prompts: Sequence[Prompt], *args: Any, **kwargs: Any) -> Rollout:
        """:func:`rewardlab.models.generation.sample` on the run's engine. With vLLM, the engine first gets the
        policy's weights when an update changed them since its last copy; ``model`` is the policy, or π₀ before any
        update (calibration: the same weights then)."""
        if self.draw is not sample:
            if model is not self.policy and self.weights_version:
                raise ValueError("the vLLM engine holds the policy: π₀ can be sampled there only before any update")
            if self.synced_version != self.weights_version:
                self.draw.sync(merged_state_dict(self.policy) if self.lora is not None else self.policy.state_dict())
                self.synced_version = self.weights_version
        return self.draw(model, tokenizer, prompts, *args, **kwargs)

    # -- the shared first phase of every loop ----------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, step: int, k: int) -> tuple[Rollout, torch.Tensor]:
        """Sample ``k`` responses for each of this step's ``prompts_per_step`` prompts from the current policy and
        score them with the proxy reward; returns ``(rollout, r [P·k])``, r on the policy's device."""
        a = self.args
        batch = prompt_batch(self.prompts, a.prompts_per_step, a.seed, step)
        with self.amp():
            ro = self.sample_policy(self.policy, self.tokenizer, batch, k, a.max_new_tokens, a.temperature,
                                    a.top_p, seed=step_seed(a.seed, step), batch_size=a.batch_size,
                                    max_prompt_length=self.max_prompt_length)
        r = self.reward.score(ro.prompts, ro.responses).float().to(self.device)
        self.reward_info = reward_metrics(self.reward, "reward_")  # logged with this step's train row
        if r.dim() != 1:
            raise ValueError("the reward must return one scalar per response; aggregate multi-output rewards "
                             "(e.g. ensemble:mean:SPEC)")
        return ro, r

    # -- logging -----------------------------------------------------------------------------------------------
    def log(self, step: int, metrics: dict[str, Any], kind: str = "train") -> None:
        if kind == "train":
            metrics = {**metrics, **self.reward_info}
        row = {"kind": kind, "step": step, "time_s": round(time.perf_counter() - self.t0, 3), **metrics}
        self.rows.append(row)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        self.tracking.log(row)
        if kind != "train":
            return
        shown = " ".join(f"{k}={v:.3g}" for k, v in metrics.items() if isinstance(v, float))
        self.progress.update(step + 1, shown)

    def evaluate(self, step: int) -> dict[str, float]:
        row = self.tracker.evaluate(self.policy, self.ref, self.tokenizer, step, self.sample_policy)
        self.log(step, {k: v for k, v in row.items() if k != "step"}, kind="eval")
        return row

    def maybe_evaluate(self, step: int) -> None:
        every = self.args.eval_every
        if step == 0 or (every > 0 and step % every == 0):
            if not any(h["step"] == step for h in self.tracker.history):
                self.evaluate(step)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def maybe_checkpoint(self, step: int) -> None:
        """Checkpoint after ``step`` completed steps if ``save_every`` says so."""
        if self.out is not None and self.args.save_every > 0 and step % self.args.save_every == 0:
            self.save_checkpoint(step)

    def save_checkpoint(self, step: int) -> None:
        """policy (save_pretrained, safetensors; LoRA: the adapter alone) + optimizer (safetensors + JSON) + step and
        gold history."""
        final, tmp = self.out / "checkpoint", self.out / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if self.lora is None:
            self.policy.save_pretrained(tmp / "policy")
        else:
            save_adapter(self.lora, tmp / "adapter")
        save_state(tmp, "optimizer", self.optimizer.state_dict())
        (tmp / "state.json").write_text(json.dumps({"step": step, "history": self.tracker.history,
                                                    "args": asdict(self.args)}))
        old = self.out / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self) -> None:
        from transformers import AutoModelForCausalLM

        ck = self.out / "checkpoint"
        state = json.loads((ck / "state.json").read_text())
        if (ck / "adapter").exists() != (self.lora is not None):
            raise UserError(f"{ck}: resume with the --lora-r it was saved with ({state['args'].get('lora_r', 0)})")
        if self.lora is not None:
            load_adapter(self.lora, ck / "adapter")
        else:
            saved = AutoModelForCausalLM.from_pretrained(ck / "policy", use_safetensors=True)
            self.policy.load_state_dict(saved.state_dict())
        self.optimizer.load_state_dict(load_state(ck, "optimizer"))
        self.weights_version += 1  # the engine must get the checkpoint's weights
        self.start = int(state["step"])
        self.tracker.history = state["history"]
        metrics = self.out / "metrics.jsonl"
        if metrics.exists():  # drop rows logged after the checkpoint: they are recomputed identically
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if r["step"] < self.start or (r["kind"] == "eval" and r["step"] == self.start)]
            write_jsonl_atomic(metrics, kept)
            self.rows = kept

    # -- the end -------------------------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Final evaluation, Gao fit, final policy and ``summary.json``, then the plot (a plotting failure raises
        :class:`~rewardlab.evaluate.plots.PlotError` after the results are on disk); returns the summary."""
        self.progress.close()
        if not any(h["step"] == self.args.steps for h in self.tracker.history):
            self.evaluate(self.args.steps)
        self.closing.close()  # the sampling engine: nothing samples after the last evaluation
        hist = sorted(self.tracker.history, key=lambda h: h["step"])
        self.tracker.history = hist
        fit = self.tracker.fit(self.fit_form)
        summary = {"algorithm": self.name, "args": asdict(self.args), "n_prompts": len(self.prompts),
                   "max_prompt_length": self.max_prompt_length, "truncated_prompts": self.truncated_prompts,
                   "dtype": str(self.dtype).removeprefix("torch."), "evaluations": hist, "gao_fit": fit,
                   "wall_time_s": round(time.perf_counter() - self.t0, 2), "warnings": self.warnings}
        if self.gold is not None and hist:
            best = max(hist, key=lambda h: h["gold_mean"])
            summary["gold_peak"] = {"step": best["step"], "gold_mean": best["gold_mean"], "sqrt_kl": best["sqrt_kl"]}
        if self.out is not None:
            self.save_checkpoint(self.args.steps)
            tmp = self.out / "policy.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            if self.lora is None:
                self.policy.save_pretrained(tmp)
            else:
                save_merged(self.policy, tmp)  # a plain HF causal LM: the adapter merged into a CPU copy
            self.tokenizer.save_pretrained(tmp)
            shutil.rmtree(self.out / "policy", ignore_errors=True)
            os.replace(tmp, self.out / "policy")
            write_json_atomic(self.out / "summary.json", summary)
            if len(hist) >= 2:
                with plotting(self.out / "gold_vs_kl.png", self.out / "summary.json"):
                    plot_overoptimization([h["sqrt_kl"] for h in hist], [h["proxy_mean"] for h in hist],
                                          [h["gold_mean"] for h in hist] if self.gold is not None else None, fit,
                                          self.out / "gold_vs_kl.png", f"{self.name}: proxy and gold vs √KL")
        self.tracking.close()
        return summary
