"""`rewardlab optimize {bon,raft,rloo,grpo,dpo}`. Imports only typer at module level; heavy imports are inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

optimize_app = typer.Typer(help="Optimize a policy against a reward (best-of-n, RAFT, RLOO, GRPO, online DPO), "
                           "tracking a gold reward to show overoptimization.", no_args_is_help=True)

# Options shared by every command (declared once, reused in each signature).
POLICY = typer.Option(..., "--policy", help="HF causal LM directory, or 'tiny' (a random tiny GPT-2 whose "
                      "tokenizer is trained on the prompts; for smoke tests).")
REWARD = typer.Option(..., "--reward", help="Reward spec (checkpoint dir, python:MODULE:FN, ...). Repeat for an "
                      "ensemble (see --aggregate).")
GOLD = typer.Option(None, "--gold", help="Gold reward spec: tracked at every evaluation, never optimized.")
PROMPTS = typer.Option(..., "--prompts", help="JSONL with a 'prompt' field per row.")
OUTPUT = typer.Option(..., "--output", "-o", help="Run directory (metrics.jsonl, summary.json, plot, policy/).")
MAX_PROMPTS = typer.Option(None, "--max-prompts", help="Use only the first N prompts.")
AGGREGATE = typer.Option("mean", "--aggregate", help="Ensemble aggregation: mean | wco | uwo.")
UWO_LAMBDA = typer.Option(None, "--uwo-lambda", help="λ of UWO (default 0.5 for bon, 0.1 for RL).")
NORMALIZE = typer.Option("none", "--normalize", help="Reward normalization: none | fixed (on initial-policy "
                         "samples) | running.")
CLIP = typer.Option(None, "--clip", help="Clip the normalized reward to ±C.")
PAR = typer.Option(0, "--par", help="PAR shaping with M reference responses per prompt (0: off).")
MAX_NEW = typer.Option(32, "--max-new-tokens")
TEMPERATURE = typer.Option(1.0, "--temperature")
TOP_P = typer.Option(1.0, "--top-p")
SEED = typer.Option(0, "--seed")
DEVICE = typer.Option("cpu", "--device")
BATCH = typer.Option(64, "--batch-size", help="Sequences per generation / log-prob forward pass.")
EVAL_EVERY = typer.Option(None, "--eval-every", help="Steps between gold-tracking evaluations.")
EVAL_PROMPTS = typer.Option(32, "--eval-prompts", help="The first N prompts are evaluated.")
EVAL_SAMPLES = typer.Option(4, "--eval-samples", help="Samples per evaluation prompt.")
SAVE_EVERY = typer.Option(0, "--save-every", help="Steps between checkpoints (0: only at the end).")
RESUME = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint if present.")


def _setup(policy: str, reward: list[str], gold: str | None, prompts: Path, max_prompts: int | None,
           aggregate: str, uwo_lambda: float, normalize: str, clip: float | None, par: int, seed: int,
           device: str) -> tuple[Any, Any, Any, Any, list]:
    """Load prompts, policy (+ tokenizer), the (shaped) proxy reward and the gold reward."""
    import torch
    from transformers.utils import logging as hf_logging

    from rewardlab.data.load import load_prompts
    from rewardlab.errors import UserError
    from rewardlab.rewards.ensemble import METHODS, EnsembleReward
    from rewardlab.rewards.registry import load_reward
    from rewardlab.rewards.shaping import NormalizedReward, PARReward

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    prompt_list = load_prompts(prompts)[:max_prompts]
    if policy == "tiny":
        from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

        texts = [p if isinstance(p, str) else " ".join(m["content"] for m in p) for p in prompt_list]
        tokenizer = train_tiny_tokenizer(texts, vocab_size=512)
        model = tiny_causal_lm(tokenizer, seed=seed).to(device)
    else:
        from rewardlab.evaluate.teacher import load_policy

        model, tokenizer = load_policy(policy, device=device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if aggregate not in METHODS:
        raise UserError(f"--aggregate must be one of {', '.join(METHODS)}, got {aggregate!r}")
    if normalize not in ("none", "fixed", "running"):
        raise UserError(f"--normalize must be none, fixed or running, got {normalize!r}")
    members = [load_reward(spec, device=device) for spec in reward]
    proxy = members[0] if len(members) == 1 else EnsembleReward(members, aggregate, uwo_lambda)
    if normalize != "none":
        proxy = NormalizedReward(proxy, mode=normalize, clip=clip)
    if par > 0:
        proxy = PARReward(proxy, max_refs=par)
    gold_reward = load_reward(gold, device=device) if gold else None
    return model, tokenizer, proxy, gold_reward, prompt_list


def _loop_args(cls, steps, k, lr, max_new_tokens, temperature, top_p, seed, batch_size, eval_every, eval_prompts,
               eval_samples, save_every, resume, par, **extra):
    kwargs = dict(steps=steps, k=k, lr=lr, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                  seed=seed, batch_size=batch_size, eval_prompts=eval_prompts, eval_samples=eval_samples,
                  save_every=save_every, resume=resume, calibration_samples=max(2, par), **extra)
    if eval_every is not None:
        kwargs["eval_every"] = eval_every
    return cls(**kwargs)


def _report(summary: dict, output: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = summary.get("evaluations") or summary.get("table") or []
    table = Table(title=f"{summary['algorithm']}: proxy and gold vs √KL")
    names = ("step", "n", "sqrt_kl", "kl", "proxy_mean", "proxy", "gold_mean", "gold")
    cols = [c for c in names if rows and c in rows[0]]
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    console = Console()
    console.print(table)
    fit = summary.get("gao_fit")
    if fit:
        console.print(f"Gao {fit['form']} fit: α={fit['alpha']:.4g} β={fit['beta']:.4g} R²={fit['r2']:.3f} "
                      f"peak at √KL={fit['d_peak']}")
    console.print(f"wrote {output}/summary.json")


@optimize_app.command("bon")
def bon_command(policy: str = POLICY, reward: list[str] = REWARD, prompts: Path = PROMPTS, output: Path = OUTPUT,
                gold: str | None = GOLD, n: int = typer.Option(64, "--n", help="Samples per prompt (N)."),
                ns: list[int] = typer.Option([], "--ns", help="n values to report (default: powers of 2, N)."),
                max_prompts: int | None = MAX_PROMPTS, aggregate: str = AGGREGATE,
                uwo_lambda: float | None = UWO_LAMBDA, normalize: str = NORMALIZE, clip: float | None = CLIP,
                par: int = PAR,
                max_new_tokens: int = MAX_NEW, temperature: float = TEMPERATURE, top_p: float = TOP_P,
                seed: int = SEED, batch_size: int = BATCH, device: str = DEVICE) -> None:
    """Best-of-n: proxy and gold for every n ≤ N from one set of N samples per prompt (unbiased estimator)."""
    from rewardlab.optimize.best_of_n import BoNArgs, run_best_of_n

    model, tok, proxy, gold_r, plist = _setup(policy, reward, gold, prompts, max_prompts, aggregate,
                                              0.5 if uwo_lambda is None else uwo_lambda, normalize, clip, par,
                                              seed, device)
    args = BoNArgs(n_max=n, ns=list(ns), max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                   seed=seed, batch_size=batch_size, calibration_samples=max(2, par))
    _report(run_best_of_n(model, tok, proxy, plist, args, gold=gold_r, output_dir=output), output)


@optimize_app.command("rloo")
def rloo_command(policy: str = POLICY, reward: list[str] = REWARD, prompts: Path = PROMPTS, output: Path = OUTPUT,
                 gold: str | None = GOLD, steps: int = typer.Option(100, "--steps"),
                 k: int = typer.Option(2, "--k", help="Samples per prompt (≥ 2)."),
                 kl_coef: float = typer.Option(0.05, "--kl-coef", help="β of the KL penalty in the reward."),
                 loss: str = typer.Option("reinforce", "--loss", help="reinforce | ppo"),
                 ppo_epochs: int = typer.Option(1, "--ppo-epochs"),
                 minibatch_size: int = typer.Option(0, "--minibatch-size", help="0: the whole batch."),
                 prompts_per_step: int = typer.Option(8, "--prompts-per-step"),
                 lr: float = typer.Option(1e-5, "--lr"), max_prompts: int | None = MAX_PROMPTS,
                 aggregate: str = AGGREGATE, uwo_lambda: float | None = UWO_LAMBDA, normalize: str = NORMALIZE,
                 clip: float | None = CLIP, par: int = PAR, max_new_tokens: int = MAX_NEW,
                 temperature: float = TEMPERATURE, top_p: float = TOP_P, seed: int = SEED, batch_size: int = BATCH,
                 eval_every: int | None = EVAL_EVERY, eval_prompts: int = EVAL_PROMPTS,
                 eval_samples: int = EVAL_SAMPLES, save_every: int = SAVE_EVERY, resume: bool = RESUME,
                 device: str = DEVICE) -> None:
    """RLOO: leave-one-out REINFORCE (or PPO-clip) with a KL penalty to the initial policy."""
    _policy_gradient("rloo", **locals())


@optimize_app.command("grpo")
def grpo_command(policy: str = POLICY, reward: list[str] = REWARD, prompts: Path = PROMPTS, output: Path = OUTPUT,
                 gold: str | None = GOLD, steps: int = typer.Option(100, "--steps"),
                 k: int = typer.Option(8, "--k", help="Samples per prompt (group size)."),
                 kl_coef: float = typer.Option(0.04, "--kl-coef", help="β of the k3 KL term in the loss."),
                 loss: str = typer.Option("reinforce", "--loss", help="reinforce | ppo"),
                 ppo_epochs: int = typer.Option(1, "--ppo-epochs"),
                 minibatch_size: int = typer.Option(0, "--minibatch-size", help="0: the whole batch."),
                 prompts_per_step: int = typer.Option(8, "--prompts-per-step"),
                 lr: float = typer.Option(1e-5, "--lr"), max_prompts: int | None = MAX_PROMPTS,
                 aggregate: str = AGGREGATE, uwo_lambda: float | None = UWO_LAMBDA, normalize: str = NORMALIZE,
                 clip: float | None = CLIP, par: int = PAR, max_new_tokens: int = MAX_NEW,
                 temperature: float = TEMPERATURE, top_p: float = TOP_P, seed: int = SEED, batch_size: int = BATCH,
                 eval_every: int | None = EVAL_EVERY, eval_prompts: int = EVAL_PROMPTS,
                 eval_samples: int = EVAL_SAMPLES, save_every: int = SAVE_EVERY, resume: bool = RESUME,
                 device: str = DEVICE) -> None:
    """GRPO: group-normalized advantages, k3 KL to the initial policy in the loss."""
    _policy_gradient("grpo", **locals())


def _policy_gradient(algo: str, policy, reward, prompts, output, gold, steps, k, kl_coef, loss, ppo_epochs,
                     minibatch_size, prompts_per_step, lr, max_prompts, aggregate, uwo_lambda, normalize, clip, par,
                     max_new_tokens, temperature, top_p, seed, batch_size, eval_every, eval_prompts, eval_samples,
                     save_every, resume, device) -> None:
    from rewardlab.optimize.rloo import GRPOArgs, RLOOArgs, train_rloo

    model, tok, proxy, gold_r, plist = _setup(policy, reward, gold, prompts, max_prompts, aggregate,
                                              0.1 if uwo_lambda is None else uwo_lambda, normalize, clip, par,
                                              seed, device)
    args = _loop_args(GRPOArgs if algo == "grpo" else RLOOArgs, steps, k, lr, max_new_tokens, temperature, top_p,
                      seed, batch_size, eval_every, eval_prompts, eval_samples, save_every, resume, par,
                      kl_coef=kl_coef, loss=loss, ppo_epochs=ppo_epochs, minibatch_size=minibatch_size,
                      prompts_per_step=prompts_per_step)
    _report(train_rloo(model, tok, proxy, plist, args, gold=gold_r, output_dir=output), output)


@optimize_app.command("raft")
def raft_command(policy: str = POLICY, reward: list[str] = REWARD, prompts: Path = PROMPTS, output: Path = OUTPUT,
                 gold: str | None = GOLD, steps: int = typer.Option(4, "--iterations", help="Iterations."),
                 k: int = typer.Option(8, "--k", help="Samples per prompt."),
                 keep_fraction: float = typer.Option(1.0, "--keep-fraction", help="Top fraction of the "
                                                     "per-prompt winners kept for fine-tuning."),
                 sft_epochs: int = typer.Option(1, "--sft-epochs"),
                 minibatch_size: int = typer.Option(16, "--minibatch-size"),
                 prompts_per_step: int = typer.Option(64, "--prompts-per-iteration"),
                 lr: float = typer.Option(1e-5, "--lr"), max_prompts: int | None = MAX_PROMPTS,
                 aggregate: str = AGGREGATE, uwo_lambda: float | None = UWO_LAMBDA, normalize: str = NORMALIZE,
                 clip: float | None = CLIP, par: int = PAR, max_new_tokens: int = MAX_NEW,
                 temperature: float = TEMPERATURE, top_p: float = TOP_P, seed: int = SEED, batch_size: int = BATCH,
                 eval_prompts: int = EVAL_PROMPTS, eval_samples: int = EVAL_SAMPLES, save_every: int = SAVE_EVERY,
                 resume: bool = RESUME, device: str = DEVICE) -> None:
    """RAFT: sample K, keep the best per prompt, fine-tune on it, repeat."""
    from rewardlab.optimize.raft import RAFTArgs, train_raft

    model, tok, proxy, gold_r, plist = _setup(policy, reward, gold, prompts, max_prompts, aggregate,
                                              0.5 if uwo_lambda is None else uwo_lambda, normalize, clip, par,
                                              seed, device)
    args = _loop_args(RAFTArgs, steps, k, lr, max_new_tokens, temperature, top_p, seed, batch_size, 1,
                      eval_prompts, eval_samples, save_every, resume, par, keep_fraction=keep_fraction,
                      sft_epochs=sft_epochs, minibatch_size=minibatch_size, prompts_per_step=prompts_per_step)
    _report(train_raft(model, tok, proxy, plist, args, gold=gold_r, output_dir=output), output)


@optimize_app.command("dpo")
def dpo_command(policy: str = POLICY, reward: list[str] = REWARD, prompts: Path = PROMPTS, output: Path = OUTPUT,
                gold: str | None = GOLD, steps: int = typer.Option(3, "--iterations", help="Iterations."),
                k: int = typer.Option(8, "--k", help="Samples per prompt."),
                beta: float = typer.Option(0.1, "--beta"), epochs: int = typer.Option(2, "--epochs"),
                minibatch_size: int = typer.Option(16, "--minibatch-size", help="Pairs per optimizer step."),
                prompts_per_step: int = typer.Option(64, "--prompts-per-iteration"),
                lr: float = typer.Option(5e-7, "--lr"), max_prompts: int | None = MAX_PROMPTS,
                aggregate: str = AGGREGATE, uwo_lambda: float | None = UWO_LAMBDA, normalize: str = NORMALIZE,
                clip: float | None = CLIP, par: int = PAR, max_new_tokens: int = MAX_NEW,
                temperature: float = TEMPERATURE, top_p: float = TOP_P, seed: int = SEED, batch_size: int = BATCH,
                eval_prompts: int = EVAL_PROMPTS, eval_samples: int = EVAL_SAMPLES, save_every: int = SAVE_EVERY,
                resume: bool = RESUME, device: str = DEVICE) -> None:
    """Online iterative DPO: K samples, best vs worst pair, β = 0.1, reference = previous iteration."""
    from rewardlab.optimize.dpo import OnlineDPOArgs, train_online_dpo

    model, tok, proxy, gold_r, plist = _setup(policy, reward, gold, prompts, max_prompts, aggregate,
                                              0.5 if uwo_lambda is None else uwo_lambda, normalize, clip, par,
                                              seed, device)
    args = _loop_args(OnlineDPOArgs, steps, k, lr, max_new_tokens, temperature, top_p, seed, batch_size, 1,
                      eval_prompts, eval_samples, save_every, resume, par, beta=beta, epochs=epochs,
                      minibatch_size=minibatch_size, prompts_per_step=prompts_per_step)
    _report(train_online_dpo(model, tok, proxy, plist, args, gold=gold_r, output_dir=output), output)


def register(app: typer.Typer) -> None:
    """Add ``rewardlab optimize ...`` to the main app."""
    app.add_typer(optimize_app, name="optimize")
