"""`rewardlab optimize {bon,raft,superhf,rloo,grpo,dpo}`. Imports only typer (and the stdlib-only
:mod:`rewardlab.optimize.run`) at module level; heavy imports are inside.

One function per command: it parses its options, fills the loop's args dataclass and calls
:func:`rewardlab.optimize.run.run_optimization` with its loop function (``run_best_of_n``, ``train_rloo``,
``train_grpo``, ``train_raft``, ``train_superhf``, ``train_online_dpo``), then prints the table.

Options that several commands share are defined once, in groups: :data:`SHARED` (every command; the fields of
:class:`~rewardlab.optimize.run.RunOptions`), :data:`POLICY_GRADIENT` (rloo, grpo) and :data:`LOOP` (the training
loops). A command names a group by one parameter (``run``, ``pg``, ``loop``) and :func:`grouped` puts the group's
options in that parameter's place, so ``--help`` lists them as if the command declared each one; the command gets
them back as one ``RunOptions`` (``run``) or as a dict of its args dataclass's fields (``pg``, ``loop``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from rewardlab.models.device import device_option, dtype_option
from rewardlab.models.engines import engine_option
from rewardlab.optimize.run import RunOptions

optimize_app = typer.Typer(help="Optimize a policy against a reward (best-of-n, RAFT, SuperHF, RLOO, GRPO, online "
                           "DPO), tracking a gold reward to show overoptimization.", no_args_is_help=True)

# the options of every command: {name: (type, option)}, in --help order, named as the fields of RunOptions
SHARED: dict[str, tuple[Any, Any]] = {
    "policy": (str, typer.Option(..., "--policy", help="HF causal LM directory, or 'tiny' (a random tiny GPT-2 whose "
                                 "tokenizer is trained on the prompts; for smoke tests).")),
    "reward": (list[str], typer.Option(..., "--reward", help="Reward spec (checkpoint dir, python:MODULE:FN, "
                                       "ensemble:..., http://...). Repeat for an ensemble (see --aggregate).")),
    "prompts": (Path, typer.Option(..., "--prompts", help="JSONL with a 'prompt' field per row.")),
    "output": (Path, typer.Option(..., "--output", "-o", help="Run directory (metrics.jsonl, summary.json, "
                                 "gold_vs_kl.png, policy/).")),
    "gold": (str | None, typer.Option(None, "--gold", help="Gold reward spec: tracked, never optimized.")),
    "max_prompts": (int | None, typer.Option(None, "--max-prompts", help="Use only the first N prompts.")),
    "split": (str | None, typer.Option(None, "--split", help="Split of a saved DatasetDict --prompts (default: "
                                       "train, or its only split).")),
    "aggregate": (str, typer.Option("mean", "--aggregate", help="Ensemble aggregation: mean | wco | uwo.")),
    "uwo_lambda": (float | None, typer.Option(None, "--uwo-lambda", help="λ of UWO (default 0.5 for bon and "
                                             "RAFT/DPO, 0.1 for RLOO/GRPO).")),
    "normalize": (str, typer.Option("none", "--normalize", help="Reward normalization: none | fixed (on "
                                    "initial-policy samples) | running.")),
    "clip": (float | None, typer.Option(None, "--clip", help="Clip the normalized reward to ±C.")),
    "par": (int, typer.Option(0, "--par", help="PAR shaping with M reference responses per prompt (0: off).")),
    "max_new_tokens": (int, typer.Option(32, "--max-new-tokens")),
    "max_prompt_length": (int | None, typer.Option(None, "--max-prompt-length", help="Prompt tokens kept (the last "
                                                   "ones; a leading bos stays). Default: what fits the policy, its "
                                                   "positions − --max-new-tokens (no cap for models without a "
                                                   "position limit).")),
    "temperature": (float, typer.Option(1.0, "--temperature")),
    "top_p": (float, typer.Option(1.0, "--top-p")),
    "seed": (int, typer.Option(0, "--seed")),
    "batch_size": (int, typer.Option(64, "--batch-size", help="Sequences per generation / log-prob forward.")),
    "device": (str, device_option()),
    "dtype": (str, dtype_option("Training keeps fp32 master weights (autocast).")),
    "report_to": (str, typer.Option("none", "--report-to", help="Also log the metrics.jsonl numbers (bon: its table, "
                                    "step = n) to tensorboard (OUTPUT/runs/) and/or wandb: tensorboard | wandb | "
                                    "none, or a comma list (TRL's report_to).")),
    "engine": (str, engine_option("bon samples the policy once; the training loops copy its new weights into vLLM "
                                  "before each sampling that follows an update (every rloo/grpo step, every "
                                  "raft/superhf/dpo iteration) and compute every log-prob with torch, so vLLM's "
                                  "samples stand for the policy's: the same distribution up to float rounding.")),
}

# the options of the training loops (rloo, grpo, raft, superhf, dpo), named as fields of LoopArgs
EVAL_PROMPTS, EVAL_SAMPLES = 32, 4
LOOP: dict[str, tuple[Any, Any]] = {
    "eval_prompts": (int, typer.Option(EVAL_PROMPTS, "--eval-prompts", help="The first N prompts are evaluated.")),
    "eval_samples": (int, typer.Option(EVAL_SAMPLES, "--eval-samples", help="Samples per evaluation prompt.")),
    "save_every": (int, typer.Option(10, "--save-every", help="Steps between checkpoints, so a killed run continues "
                                     "with --resume (0: only at the end).")),
    "resume": (bool, typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint if present.")),
    "lora_r": (int, typer.Option(0, "--lora-r", help="LoRA rank on the policy (0: full fine-tuning). R > 0 trains "
                                 "only a fresh adapter, and the KL reference is the policy with the adapter off "
                                 "instead of a frozen copy; policy/ is saved merged (a plain HF causal LM).")),
    "lora_alpha": (int, typer.Option(16, "--lora-alpha", help="LoRA scaling α (the adapter's update is scaled by "
                                     "α / R).")),
    "lora_target": (str, typer.Option("all-linear", "--lora-target", help="Modules given an adapter: all-linear or "
                                      "comma-separated module names.")),
}

# the options of the policy-gradient loops (rloo, grpo): 100 steps of 8 prompts, evaluated every 10 steps
PG_STEPS, PG_PROMPTS, PG_EVAL_EVERY = 100, 8, 10
POLICY_GRADIENT: dict[str, tuple[Any, Any]] = {
    "loss": (str, typer.Option("reinforce", "--loss", help="reinforce | ppo")),
    "ppo_epochs": (int, typer.Option(1, "--ppo-epochs")),
    "minibatch_size": (int, typer.Option(0, "--minibatch-size", help="0: the whole batch.")),
    "prompts_per_step": (int, typer.Option(PG_PROMPTS, "--prompts-per-step")),
    "lr": (float, typer.Option(1e-5, "--lr")),
    "eval_every": (int, typer.Option(PG_EVAL_EVERY, "--eval-every", help="Steps between evaluations (0: only the "
                                     "first and the last).")),
}

GROUPS = {"run": SHARED, "pg": POLICY_GRADIENT, "loop": LOOP}  # the parameter that names a group -> its options


def grouped(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` as typer should read it: each parameter named in :data:`GROUPS` is replaced, in its place, by the
    group's options (so ``--help`` and the command line are those of a command that lists every option). Called,
    it gets them back grouped: ``run`` as one :class:`RunOptions`, ``pg`` and ``loop`` as ``{name: value}``."""
    hints = typing.get_type_hints(command)
    params: list[inspect.Parameter] = []
    for p in inspect.signature(command).parameters.values():
        if p.name in GROUPS:
            params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                       for name, (kind, option) in GROUPS[p.name].items()]
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name]))
    names = inspect.signature(command).parameters

    @functools.wraps(command)
    def parsed(**options: Any) -> None:
        for group, members in GROUPS.items():
            if group in names:
                values = {name: options.pop(name) for name in members}
                options[group] = RunOptions(**values) if group == "run" else values
        command(**options)

    parsed.__signature__ = inspect.Signature(params)  # what typer reads (inspect.signature returns it as is)
    parsed.__annotations__ = {p.name: p.annotation for p in params}
    return parsed


def _cost(steps: int, prompts: int, k: int, eval_every: int, unit: str) -> str:
    """What the default run samples, for the help of --steps / --iterations: a run's cost is its sampling (each
    response is generated and scored), and the defaults are sized for a real policy, not for a first try."""
    evaluations = len(range(0, steps, eval_every)) + 1  # Session.maybe_evaluate, plus the final one
    total = steps * prompts * k + evaluations * EVAL_PROMPTS * EVAL_SAMPLES
    return (f"Each {unit} samples and scores --prompts-per-{unit} × --num-samples responses ({prompts} × {k} = "
            f"{prompts * k} by default), each of the {evaluations} evaluations --eval-prompts × --eval-samples "
            f"({EVAL_PROMPTS * EVAL_SAMPLES}): the defaults generate about {total:,} responses of up to "
            f"--max-new-tokens tokens; with a real policy, try a few {unit}s first.")


def _pg_steps(k: int) -> Any:
    return typer.Option(PG_STEPS, "--steps", help="Optimizer steps. " + _cost(PG_STEPS, PG_PROMPTS, k, PG_EVAL_EVERY,
                                                                                 "step"))


def _pg_k(k: int) -> Any:
    return typer.Option(k, "--num-samples", "-m", "--k", help="Samples per prompt (≥ 2).")


# the options of the iterative loops (raft, dpo): each iteration samples 8 responses for 64 prompts
IT_PROMPTS, IT_K = 64, 8
IT_K_OPTION = typer.Option(IT_K, "--num-samples", "-m", "--k", help="Samples per prompt.")
IT_PROMPTS_OPTION = typer.Option(IT_PROMPTS, "--prompts-per-iteration")


def _iterations(iterations: int) -> Any:
    return typer.Option(iterations, "--iterations", help="Iterations (each one evaluated). "
                        + _cost(iterations, IT_PROMPTS, IT_K, 1, "iteration"))


@optimize_app.command("bon", help="Best-of-n: proxy and gold for every n ≤ N from one set of N samples per prompt "
                      "(unbiased estimator), against the bound KL ≤ log n − (n−1)/n, with the duplicate rate of the "
                      "samples.")
@grouped
def bon_command(
    *, run: RunOptions,
    n_max: int = typer.Option(64, "--num-samples", "-m", "--n", help="Samples per prompt (N): every prompt (all of "
                              "--prompts unless --max-prompts) is sampled N times and each sample scored by --reward "
                              "and --gold, so the default costs 64 generations per prompt."),
    ns: list[int] = typer.Option([], "--ns", help="n values to report (default: powers of 2, N)."),
) -> None:
    from rewardlab.optimize.best_of_n import BoNArgs, run_best_of_n
    from rewardlab.optimize.run import run_optimization

    args = BoNArgs(n_max=n_max, ns=list(ns))
    _report(run_optimization(run_best_of_n, args, run, uwo_default=0.5, log=_err), run.output)


@optimize_app.command("rloo")
@grouped
def rloo_command(
    *, run: RunOptions, steps: int = _pg_steps(2), k: int = _pg_k(2),
    kl_coef: float = typer.Option(0.05, "--kl-coef", help="β of the KL penalty in the reward."),
    pg: dict[str, Any], loop: dict[str, Any],
    dense: bool = typer.Option(False, "--dense", help="A prm: reward's per-step rewards as per-token returns "
                               "(Fine-Grained RLHF) instead of one score."),
) -> None:
    """RLOO: leave-one-out REINFORCE (or PPO-clip) with a KL penalty to the initial policy."""
    from rewardlab.optimize.rloo import RLOOArgs, train_rloo
    from rewardlab.optimize.run import run_optimization

    args = RLOOArgs(steps=steps, k=k, kl_coef=kl_coef, dense=dense, **pg, **loop)
    _report(run_optimization(train_rloo, args, run, uwo_default=0.1, log=_err), run.output)


@optimize_app.command("grpo")
@grouped
def grpo_command(
    *, run: RunOptions, steps: int = _pg_steps(8), k: int = _pg_k(8),
    kl_coef: float = typer.Option(0.04, "--kl-coef", help="β of the k3 KL term in the loss."),
    pg: dict[str, Any], loop: dict[str, Any],
) -> None:
    """GRPO: group-normalized advantages, k3 KL to the initial policy in the loss."""
    from rewardlab.optimize.rloo import GRPOArgs, train_grpo
    from rewardlab.optimize.run import run_optimization

    args = GRPOArgs(steps=steps, k=k, kl_coef=kl_coef, **pg, **loop)
    _report(run_optimization(train_grpo, args, run, uwo_default=0.1, log=_err), run.output)


@optimize_app.command("raft")
@grouped
def raft_command(
    *, run: RunOptions, steps: int = _iterations(4), k: int = IT_K_OPTION,
    minibatch_size: int = typer.Option(16, "--minibatch-size", help="Responses per optimizer step."),
    prompts_per_step: int = IT_PROMPTS_OPTION, lr: float = typer.Option(1e-5, "--lr"),
    keep_fraction: float = typer.Option(1.0, "--keep-fraction", help="Top fraction of the per-prompt winners kept "
                                        "for fine-tuning."),
    sft_epochs: int = typer.Option(1, "--sft-epochs"),
    loop: dict[str, Any],
) -> None:
    """RAFT: sample K, keep the best per prompt, fine-tune on it, repeat."""
    from rewardlab.optimize.raft import RAFTArgs, train_raft
    from rewardlab.optimize.run import run_optimization

    args = RAFTArgs(steps=steps, k=k, minibatch_size=minibatch_size, prompts_per_step=prompts_per_step, lr=lr,
                    keep_fraction=keep_fraction, sft_epochs=sft_epochs, **loop)
    _report(run_optimization(train_raft, args, run, uwo_default=0.5, log=_err), run.output)


@optimize_app.command("superhf")
@grouped
def superhf_command(
    *, run: RunOptions,
    steps: int = typer.Option(4, "--iterations", help="Iterations (each one evaluated). Each samples "
                              "--prompts-per-iteration × --num-samples responses (64 × 16 = 1024 by default)."),
    k: int = typer.Option(16, "--num-samples", "-m", "--k", help="Completions per prompt (the paper's superbatch); "
                          "the best one is kept."),
    kl_coef: float = typer.Option(0.35, "--kl-coef", min=0.0, help="β of the KL prior KL(π ‖ π_ref) in the loss "
                                  "(the paper's default; 0: RAFT)."),
    minibatch_size: int = typer.Option(16, "--minibatch-size", help="Completions per optimizer step."),
    prompts_per_step: int = IT_PROMPTS_OPTION, lr: float = typer.Option(1e-5, "--lr"),
    sft_epochs: int = typer.Option(1, "--sft-epochs"),
    loop: dict[str, Any],
) -> None:
    """SuperHF: sample K, keep the best per prompt, fine-tune on it with cross-entropy + β·KL to the initial
    policy, repeat."""
    from rewardlab.optimize.run import run_optimization
    from rewardlab.optimize.superhf import SuperHFArgs, train_superhf

    args = SuperHFArgs(steps=steps, k=k, kl_coef=kl_coef, minibatch_size=minibatch_size,
                       prompts_per_step=prompts_per_step, lr=lr, sft_epochs=sft_epochs, **loop)
    _report(run_optimization(train_superhf, args, run, uwo_default=0.5, log=_err), run.output)


@optimize_app.command("dpo")
@grouped
def dpo_command(
    *, run: RunOptions, steps: int = _iterations(3), k: int = IT_K_OPTION,
    minibatch_size: int = typer.Option(16, "--minibatch-size", help="Pairs per optimizer step."),
    prompts_per_step: int = IT_PROMPTS_OPTION, lr: float = typer.Option(5e-7, "--lr"),
    beta: float = typer.Option(0.1, "--beta"),
    ref: str = typer.Option("initial", "--ref", help="DPO reference: initial (π₀ in every iteration, as RLHFlow and "
                            "OpenRLHF) | previous (the policy at the start of each iteration)."),
    epochs: int = typer.Option(2, "--epochs"),
    loop: dict[str, Any],
) -> None:
    """Online iterative DPO: K samples, best vs worst pair, β = 0.1, reference = the initial policy."""
    from rewardlab.optimize.dpo import OnlineDPOArgs, train_online_dpo
    from rewardlab.optimize.run import run_optimization

    args = OnlineDPOArgs(steps=steps, k=k, minibatch_size=minibatch_size, prompts_per_step=prompts_per_step, lr=lr,
                         beta=beta, ref=ref, epochs=epochs, **loop)
    _report(run_optimization(train_online_dpo, args, run, uwo_default=0.5, log=_err), run.output)


def _err(line: str) -> None:
    typer.echo(line, err=True)


def _report(summary: dict, output: Path) -> None:
    """Print a run's table (proxy and gold against √KL), its notes and warnings."""
    from rich.console import Console
    from rich.table import Table

    from rewardlab.optimize.fits import describe

    rows = summary.get("evaluations") or summary.get("table") or []
    names = ("step", "n", "sqrt_kl", "kl", "duplicate_rate", "proxy_mean", "proxy", "gold_mean", "gold")
    bound = "table" in summary  # best-of-n: kl is the bound log n − (n−1)/n
    shown = {"sqrt_kl": "√KL ≤", "kl": "KL ≤", "duplicate_rate": "dup. rate"} if bound else {}
    cols = [c for c in names if rows and c in rows[0]]
    table = Table(title=f"{summary['algorithm']}: proxy and gold vs √KL" + (" (upper bound)" if bound else ""))
    for c in cols:
        table.add_column(shown.get(c, c), justify="right")
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    console = Console()
    console.print(table)
    if bound:
        console.print(f"KL ≤ log n − (n−1)/n: an upper bound on KL(π_BoN ‖ π₀) (Beirami et al. 2024), exact only when "
                      f"the n samples are distinct with continuous rewards; {summary['duplicate_rate']:.1%} of the "
                      f"{summary['args']['n_max']} samples per prompt repeat another sample's response "
                      f"({summary['prompts_with_duplicates']} of {summary['n_prompts']} prompts have repeats)")
    if summary.get("truncated_prompts"):
        console.print(f"{summary['truncated_prompts']} of {summary['n_prompts']} prompts truncated to their last "
                      f"{summary['max_prompt_length']} tokens")
    if summary.get("gao_fit"):
        console.print(describe(summary["gao_fit"]))
    for warning in summary.get("warnings") or []:
        console.print(f"warning: {warning}")
    console.print(f"wrote {output}/summary.json")


def register(app: typer.Typer) -> None:
    """Add ``rewardlab optimize ...`` to the main app."""
    app.add_typer(optimize_app, name="optimize")
