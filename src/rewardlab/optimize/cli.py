"""`rewardlab optimize {bon,raft,rloo,grpo,dpo}`. Imports only typer at module level; heavy imports are inside.

The options every command shares are declared once (:data:`SHARED`, :data:`LOOP`); each command adds its own
(:data:`COMMANDS`) and the command's signature is assembled from both, so typer sees ordinary keyword options.
Option names equal the fields of the loop's args dataclass, which is filled from them directly.

Order of work: the output path is checked first (creating nothing; neither an input nor holding the input policy)
and locked against a second writer (:func:`rewardlab.io.output_lock`), then the options, the prompts, the policy (and
its prompt budget, ``--max-prompt-length``), the rewards; the run directory is created only when the run writes.
Precision: ``bon`` samples from the policy loaded in ``--dtype``; the training loops keep fp32 master weights and
run their forwards under autocast in ``--dtype`` (:mod:`rewardlab.optimize.common`). Rewards load in ``--dtype``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from rewardlab.models.device import device_option, dtype_option

optimize_app = typer.Typer(help="Optimize a policy against a reward (best-of-n, RAFT, RLOO, GRPO, online DPO), "
                           "tracking a gold reward to show overoptimization.", no_args_is_help=True)


def _p(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


SHARED = [
    _p("policy", str, typer.Option(..., "--policy", help="HF causal LM directory, or 'tiny' (a random tiny GPT-2 "
                                   "whose tokenizer is trained on the prompts; for smoke tests).")),
    _p("reward", list[str], typer.Option(..., "--reward", help="Reward spec (checkpoint dir, python:MODULE:FN, "
                                         "ensemble:..., http://...). Repeat for an ensemble (see --aggregate).")),
    _p("prompts", Path, typer.Option(..., "--prompts", help="JSONL with a 'prompt' field per row.")),
    _p("output", Path, typer.Option(..., "--output", "-o", help="Run directory (metrics.jsonl, summary.json, "
                                    "gold_vs_kl.png, policy/).")),
    _p("gold", str | None, typer.Option(None, "--gold", help="Gold reward spec: tracked, never optimized.")),
    _p("max_prompts", int | None, typer.Option(None, "--max-prompts", help="Use only the first N prompts.")),
    _p("split", str | None, typer.Option(None, "--split", help="Split of a saved DatasetDict --prompts (default: "
                                         "train, or its only split).")),
    _p("aggregate", str, typer.Option("mean", "--aggregate", help="Ensemble aggregation: mean | wco | uwo.")),
    _p("uwo_lambda", float | None, typer.Option(None, "--uwo-lambda", help="λ of UWO (default 0.5 for bon and "
                                                "RAFT/DPO, 0.1 for RLOO/GRPO).")),
    _p("normalize", str, typer.Option("none", "--normalize", help="Reward normalization: none | fixed (on "
                                      "initial-policy samples) | running.")),
    _p("clip", float | None, typer.Option(None, "--clip", help="Clip the normalized reward to ±C.")),
    _p("par", int, typer.Option(0, "--par", help="PAR shaping with M reference responses per prompt (0: off).")),
    _p("max_new_tokens", int, typer.Option(32, "--max-new-tokens")),
    _p("max_prompt_length", int | None, typer.Option(None, "--max-prompt-length", help="Prompt tokens kept (the "
                                                     "last ones; a leading bos stays). Default: what fits the "
                                                     "policy, its positions − --max-new-tokens (no cap for models "
                                                     "without a position limit).")),
    _p("temperature", float, typer.Option(1.0, "--temperature")),
    _p("top_p", float, typer.Option(1.0, "--top-p")),
    _p("seed", int, typer.Option(0, "--seed")),
    _p("batch_size", int, typer.Option(64, "--batch-size", help="Sequences per generation / log-prob forward.")),
    _p("device", str, device_option()),
    _p("dtype", str, dtype_option("Training keeps fp32 master weights (autocast).")),
    _p("report_to", str, typer.Option("none", "--report-to", help="Also log the metrics.jsonl numbers (bon: its "
                                      "table, step = n) to tensorboard (OUTPUT/runs/) and/or wandb: tensorboard | "
                                      "wandb | none, or a comma list (TRL's report_to).")),
]
EVAL_PROMPTS, EVAL_SAMPLES = 32, 4
LOOP = [
    _p("eval_prompts", int, typer.Option(EVAL_PROMPTS, "--eval-prompts", help="The first N prompts are evaluated.")),
    _p("eval_samples", int, typer.Option(EVAL_SAMPLES, "--eval-samples", help="Samples per evaluation prompt.")),
    _p("save_every", int, typer.Option(10, "--save-every", help="Steps between checkpoints, so a killed run "
                                       "continues with --resume (0: only at the end).")),
    _p("resume", bool, typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint if present.")),
]


def _cost(steps: int, prompts: int, k: int, eval_every: int, unit: str) -> str:
    """What the default run samples, for the help of --steps / --iterations: a run's cost is its sampling (each
    response is generated and scored), and the defaults are sized for a real policy, not for a first try."""
    evaluations = len(range(0, steps, eval_every)) + 1  # Session.maybe_evaluate, plus the final one
    total = steps * prompts * k + evaluations * EVAL_PROMPTS * EVAL_SAMPLES
    return (f"Each {unit} samples and scores --prompts-per-{unit} × --num-samples responses ({prompts} × {k} = "
            f"{prompts * k} by default), each of the {evaluations} evaluations --eval-prompts × --eval-samples "
            f"({EVAL_PROMPTS * EVAL_SAMPLES}): the defaults generate about {total:,} responses of up to "
            f"--max-new-tokens tokens; with a real policy, try a few {unit}s first.")


def _pg_options(k: int, kl_coef: float, kl_help: str) -> list[inspect.Parameter]:
    steps, prompts, every = 100, 8, 10
    return [
        _p("steps", int, typer.Option(steps, "--steps", help="Optimizer steps. " + _cost(steps, prompts, k, every,
                                                                                           "step"))),
        _p("k", int, typer.Option(k, "--num-samples", "-m", "--k", help="Samples per prompt (≥ 2).")),
        _p("kl_coef", float, typer.Option(kl_coef, "--kl-coef", help=kl_help)),
        _p("loss", str, typer.Option("reinforce", "--loss", help="reinforce | ppo")),
        _p("ppo_epochs", int, typer.Option(1, "--ppo-epochs")),
        _p("minibatch_size", int, typer.Option(0, "--minibatch-size", help="0: the whole batch.")),
        _p("prompts_per_step", int, typer.Option(prompts, "--prompts-per-step")),
        _p("lr", float, typer.Option(1e-5, "--lr")),
        _p("eval_every", int, typer.Option(every, "--eval-every", help="Steps between evaluations (0: only the first "
                                           "and the last).")),
    ]


def _iterative_options(iterations: int, lr: float, minibatch_help: str) -> list[inspect.Parameter]:
    prompts, k = 64, 8
    return [
        _p("steps", int, typer.Option(iterations, "--iterations", help="Iterations (each one evaluated). "
                                      + _cost(iterations, prompts, k, 1, "iteration"))),
        _p("k", int, typer.Option(k, "--num-samples", "-m", "--k", help="Samples per prompt.")),
        _p("minibatch_size", int, typer.Option(16, "--minibatch-size", help=minibatch_help)),
        _p("prompts_per_step", int, typer.Option(prompts, "--prompts-per-iteration")),
        _p("lr", float, typer.Option(lr, "--lr")),
    ]


def _check_output(kw: dict[str, Any]) -> None:
    """The run directory, before any work: usable as a directory, and neither an input nor holding the input
    policy in its ``policy/`` (replaced at the end of a run)."""
    from rewardlab.io import check_not_an_input, check_output_dir, spec_paths
    from rewardlab.tracking import parse_report_to

    parse_report_to(kw["report_to"])  # an unknown tracker or a missing package: exit 2 now
    out = check_output_dir(kw["output"])
    check_not_an_input(out, {"--policy": kw["policy"], "--reward": [p for r in kw["reward"] for p in spec_paths(r)],
                             "--prompts": kw["prompts"], "--gold": spec_paths(kw["gold"])})
    check_not_an_input(out / "policy", {"--policy": kw["policy"]})


def _setup(kw: dict[str, Any], uwo_default: float, train: bool) -> tuple[Any, Any, Any, Any, list]:
    """Load prompts, policy (+ tokenizer), the (shaped) proxy reward and the gold reward (see the module docstring
    for the order). Sets ``kw["max_prompt_length"]`` to the resolved prompt budget and prints how many prompts it
    truncates. ``train``: the policy is trained (fp32 master weights) rather than only sampled."""
    import torch
    from transformers.utils import logging as hf_logging

    from rewardlab.data.load import load_prompts
    from rewardlab.errors import UserError
    from rewardlab.models.backbone import load_policy
    from rewardlab.models.device import resolve_device, resolve_dtype
    from rewardlab.models.generation import count_truncated, prompt_length_cap
    from rewardlab.rewards.ensemble import METHODS, EnsembleReward
    from rewardlab.rewards.registry import load_reward
    from rewardlab.rewards.shaping import NormalizedReward, PARReward

    if kw["aggregate"] not in METHODS:
        raise UserError(f"--aggregate must be one of {', '.join(METHODS)}, got {kw['aggregate']!r}")
    if kw["normalize"] not in ("none", "fixed", "running"):
        raise UserError(f"--normalize must be none, fixed or running, got {kw['normalize']!r}")
    if kw.get("ref", "initial") not in ("initial", "previous"):
        raise UserError(f"--ref must be initial or previous, got {kw['ref']!r}")
    device = resolve_device(kw["device"])
    dtype = resolve_dtype(kw["dtype"], device)
    hf_logging.disable_progress_bar()
    torch.manual_seed(kw["seed"])
    prompts = load_prompts(kw["prompts"], split=kw["split"])[: kw["max_prompts"]]
    policy_dtype = torch.float32 if train else dtype
    model, tokenizer = load_policy(kw["policy"], prompts, device, policy_dtype, seed=kw["seed"])
    cap = kw["max_prompt_length"] = prompt_length_cap(model, kw["max_new_tokens"], kw["max_prompt_length"])
    truncated = count_truncated(tokenizer, prompts, cap)
    if truncated:
        typer.echo(f"{kw['prompts']}: {truncated} of {len(prompts)} prompts are longer than {cap} tokens and keep "
                   f"their last {cap} (--max-prompt-length)", err=True)
    members = [load_reward(spec, device=str(device), dtype=kw["dtype"]) for spec in kw["reward"]]
    lam = uwo_default if kw["uwo_lambda"] is None else kw["uwo_lambda"]
    proxy = members[0] if len(members) == 1 else EnsembleReward(members, kw["aggregate"], lam)
    if kw["normalize"] != "none":
        proxy = NormalizedReward(proxy, mode=kw["normalize"], clip=kw["clip"])
    if kw["par"] > 0:
        proxy = PARReward(proxy, max_refs=kw["par"])
    gold = load_reward(kw["gold"], device=str(device), dtype=kw["dtype"]) if kw["gold"] else None
    return model, tokenizer, proxy, gold, prompts


def _args(cls, kw: dict[str, Any]):
    """The loop's args dataclass from the options of the same names (None: keep the dataclass default)."""
    from dataclasses import fields

    values = {f.name: kw[f.name] for f in fields(cls) if kw.get(f.name) is not None}
    if "ns" in values:
        values["ns"] = list(values["ns"])
    return cls(**values, calibration_samples=max(2, kw["par"]))


def _report(summary: dict, output: Path) -> None:
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


def _run(module: str, fn: str, args_cls: str, uwo_default: float) -> Callable[[dict], None]:
    """A command body: set up, fill ``args_cls`` from the options, run ``module.fn``, print the table."""

    def run(kw: dict[str, Any]) -> None:
        import importlib

        from rewardlab.io import output_lock

        _check_output(kw)
        with output_lock(kw["output"]):  # one writer: a second run would interleave its rows in metrics.jsonl
            mod = importlib.import_module(f"rewardlab.optimize.{module}")
            model, tok, proxy, gold, prompts = _setup(kw, uwo_default, train=module != "best_of_n")
            args = _args(getattr(mod, args_cls), kw)
            summary = getattr(mod, fn)(model, tok, proxy, prompts, args, gold=gold, output_dir=kw["output"])
        _report(summary, kw["output"])

    return run


COMMANDS: dict[str, tuple[str, list[inspect.Parameter], Callable[[dict], None]]] = {
    "bon": ("Best-of-n: proxy and gold for every n ≤ N from one set of N samples per prompt (unbiased estimator), "
            "against the bound KL ≤ log n − (n−1)/n, with the duplicate rate of the samples.",
            [_p("n_max", int, typer.Option(64, "--num-samples", "-m", "--n", help="Samples per prompt (N): every "
                                           "prompt (all of --prompts unless --max-prompts) is sampled N times and "
                                           "each sample scored by --reward and --gold, so the default costs 64 "
                                           "generations per prompt.")),
             _p("ns", list[int], typer.Option([], "--ns", help="n values to report (default: powers of 2, N)."))],
            _run("best_of_n", "run_best_of_n", "BoNArgs", 0.5)),
    "rloo": ("RLOO: leave-one-out REINFORCE (or PPO-clip) with a KL penalty to the initial policy.",
             _pg_options(2, 0.05, "β of the KL penalty in the reward.") + LOOP + [
                 _p("dense", bool, typer.Option(False, "--dense", help="A prm: reward's per-step rewards as "
                                                "per-token returns (Fine-Grained RLHF) instead of one score."))],
             _run("rloo", "train_rloo", "RLOOArgs", 0.1)),
    "grpo": ("GRPO: group-normalized advantages, k3 KL to the initial policy in the loss.",
             _pg_options(8, 0.04, "β of the k3 KL term in the loss.") + LOOP,
             _run("rloo", "train_rloo", "GRPOArgs", 0.1)),
    "raft": ("RAFT: sample K, keep the best per prompt, fine-tune on it, repeat.",
             _iterative_options(4, 1e-5, "Responses per optimizer step.") + [
                 _p("keep_fraction", float, typer.Option(1.0, "--keep-fraction", help="Top fraction of the "
                                                         "per-prompt winners kept for fine-tuning.")),
                 _p("sft_epochs", int, typer.Option(1, "--sft-epochs"))] + LOOP,
             _run("raft", "train_raft", "RAFTArgs", 0.5)),
    "dpo": ("Online iterative DPO: K samples, best vs worst pair, β = 0.1, reference = the initial policy.",
            _iterative_options(3, 5e-7, "Pairs per optimizer step.") + [
                _p("beta", float, typer.Option(0.1, "--beta")),
                _p("ref", str, typer.Option("initial", "--ref", help="DPO reference: initial (π₀ in every "
                                            "iteration, as RLHFlow and OpenRLHF) | previous (the policy at the "
                                            "start of each iteration).")),
                _p("epochs", int, typer.Option(2, "--epochs"))] + LOOP,
            _run("dpo", "train_online_dpo", "OnlineDPOArgs", 0.5)),
}


def _make_command(name: str, doc: str, params: list[inspect.Parameter], run: Callable[[dict], None]):
    def command(**kw: Any) -> None:
        run(kw)

    command.__name__ = f"{name}_command"
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(SHARED + params)  # type: ignore[attr-defined]
    return command


for _name, (_doc, _params, _body) in COMMANDS.items():
    optimize_app.command(_name)(_make_command(_name, _doc, _params, _body))


def register(app: typer.Typer) -> None:
    """Add ``rewardlab optimize ...`` to the main app."""
    app.add_typer(optimize_app, name="optimize")
