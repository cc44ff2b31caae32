"""One optimize run from its options (``rewardlab optimize {bon,raft,rloo,grpo,dpo}``): :func:`run_optimization`.

Order of work: the output path is checked first (creating nothing; neither an input nor holding the input policy)
and locked against a second writer (:func:`rewardlab.io.output_lock`), then the options, the prompts, the policy (and
its prompt budget, ``--max-prompt-length``), the rewards; the run directory is created only when the run writes.
Precision: ``bon`` samples from the policy loaded in ``--dtype``; the training loops keep fp32 master weights and
run their forwards under autocast in ``--dtype`` (:mod:`rewardlab.optimize.session`). Rewards load in ``--dtype``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

METHODS = ("none", "fixed", "running")  # --normalize


@dataclass
class RunOptions:
    """The options every optimize command shares (named as the command's flags)."""

    policy: str
    reward: list[str]
    prompts: Path
    output: Path
    gold: str | None = None
    max_prompts: int | None = None
    split: str | None = None
    aggregate: str = "mean"
    uwo_lambda: float | None = None
    normalize: str = "none"
    clip: float | None = None
    par: int = 0
    max_new_tokens: int = 32
    max_prompt_length: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 64
    device: str = "auto"
    dtype: str = "auto"
    report_to: str = "none"
    engine: str = "transformers"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_optimization(loop: Callable[..., dict[str, Any]], args: Any, run: RunOptions, *, uwo_default: float,
                     log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Run ``loop(policy, tokenizer, proxy, prompts, args, gold=..., output_dir=run.output)`` — one of
    ``run_best_of_n``, ``train_rloo``, ``train_grpo``, ``train_raft``, ``train_online_dpo`` — on what ``run`` names
    (see the module docstring for the order of work); returns the loop's summary. ``args`` (the loop's dataclass)
    gets ``run``'s sampling options of the same names, the resolved prompt budget and ``calibration_samples``.
    ``uwo_default``: λ of ``--aggregate uwo`` when ``run.uwo_lambda`` is None. ``log`` gets the truncation notice."""
    from rewardlab.io import output_lock
    from rewardlab.models.engines import check_engine
    from rewardlab.optimize.common import LoopArgs

    check_engine(run.engine)  # vLLM missing: exit 2 before anything is created
    check_run_output(run)
    with output_lock(run.output):  # one writer: a second run would interleave its rows in metrics.jsonl
        train = isinstance(args, LoopArgs)  # the policy is trained (best-of-n only samples it)
        model, tokenizer, proxy, gold, prompts, cap = load_run(run, uwo_default, train=train,
                                                               ref=getattr(args, "ref", "initial"), log=log)
        return loop(model, tokenizer, proxy, prompts, loop_args(args, run, cap), gold=gold, output_dir=run.output)


def check_run_output(run: RunOptions) -> None:
    """The run directory, before any work: usable as a directory, and neither an input nor holding the input
    policy in its ``policy/`` (replaced at the end of a run). An unknown ``--report-to`` fails here too."""
    from rewardlab.io import check_not_an_input, check_output_dir, spec_paths
    from rewardlab.tracking import parse_report_to

    parse_report_to(run.report_to)  # an unknown tracker or a missing package: exit 2 now
    out = check_output_dir(run.output)
    check_not_an_input(out, {"--policy": run.policy, "--reward": [p for r in run.reward for p in spec_paths(r)],
                             "--prompts": run.prompts, "--gold": spec_paths(run.gold)})
    check_not_an_input(out / "policy", {"--policy": run.policy})


def load_run(run: RunOptions, uwo_default: float, train: bool, ref: str = "initial",
             log: Callable[[str], None] = _stderr) -> tuple[Any, Any, Any, Any, list, int | None]:
    """Load prompts, policy (+ tokenizer), the (shaped) proxy reward and the gold reward (see the module docstring
    for the order); returns them with the resolved prompt budget, and logs how many prompts it truncates.
    ``train``: the policy is trained (fp32 master weights) rather than only sampled. ``ref``: online DPO's
    ``--ref``, checked with the other options."""
    import torch
    from transformers.utils import logging as hf_logging

    from rewardlab.data.load import load_prompts
    from rewardlab.errors import UserError
    from rewardlab.models.backbone import load_policy
    from rewardlab.models.device import resolve_device, resolve_dtype
    from rewardlab.models.generation import count_truncated, prompt_length_cap
    from rewardlab.rewards.ensemble import METHODS as AGGREGATES
    from rewardlab.rewards.ensemble import EnsembleReward
    from rewardlab.rewards.registry import load_reward
    from rewardlab.rewards.shaping import NormalizedReward, PARReward

    if run.aggregate == "brme":  # its heads and λ are the spec's: ensemble:brme=λ:SPEC,...
        raise UserError("--aggregate brme: give the BRME ensemble as one spec, --reward 'ensemble:brme=λ:A,B,...'")
    if run.aggregate not in AGGREGATES:
        raise UserError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {run.aggregate!r}")
    if run.normalize not in METHODS:
        raise UserError(f"--normalize must be none, fixed or running, got {run.normalize!r}")
    if ref not in ("initial", "previous"):
        raise UserError(f"--ref must be initial or previous, got {ref!r}")
    device = resolve_device(run.device)
    dtype = resolve_dtype(run.dtype, device)
    hf_logging.disable_progress_bar()
    torch.manual_seed(run.seed)
    prompts = load_prompts(run.prompts, split=run.split)[: run.max_prompts]
    policy_dtype = torch.float32 if train else dtype
    model, tokenizer = load_policy(run.policy, prompts, device, policy_dtype, seed=run.seed)
    cap = prompt_length_cap(model, run.max_new_tokens, run.max_prompt_length)
    truncated = count_truncated(tokenizer, prompts, cap)
    if truncated:
        log(f"{run.prompts}: {truncated} of {len(prompts)} prompts are longer than {cap} tokens and keep their last "
            f"{cap} (--max-prompt-length)")
    members = [load_reward(spec, device=str(device), dtype=run.dtype) for spec in run.reward]
    lam = uwo_default if run.uwo_lambda is None else run.uwo_lambda
    proxy = members[0] if len(members) == 1 else EnsembleReward(members, run.aggregate, lam)
    if run.normalize != "none":
        proxy = NormalizedReward(proxy, mode=run.normalize, clip=run.clip)
    if run.par > 0:
        proxy = PARReward(proxy, max_refs=run.par)
    gold = load_reward(run.gold, device=str(device), dtype=run.dtype) if run.gold else None
    return model, tokenizer, proxy, gold, prompts, cap


def loop_args(args: Any, run: RunOptions, max_prompt_length: int | None) -> Any:
    """``args`` with ``run``'s options of the same field names (None: keep the dataclass default), the resolved
    prompt budget and ``calibration_samples`` (PAR's reference responses, at least 2)."""
    shared = {f.name: getattr(run, f.name) for f in fields(run)} | {"max_prompt_length": max_prompt_length}
    names = {f.name for f in fields(args)}
    values = {k: v for k, v in shared.items() if k in names and v is not None}
    return replace(args, **values, calibration_samples=max(2, run.par))
