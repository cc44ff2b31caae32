"""Best-of-n against a proxy reward, tracked with a gold reward (Gao et al. 2022): one set of N samples per prompt
gives proxy and gold for every n ≤ N (unbiased estimator in :mod:`rewardlab.optimize.bon`).

KL: the table's ``kl`` is the bound ``KL(π_BoN ‖ π₀) ≤ log n − (n−1)/n`` (Beirami et al. 2024), exact only when the
n samples are distinct with continuous rewards; ``duplicate_rate`` (per n, and at n = N in the summary) is the
fraction of samples that repeat another sample's response to the same prompt, the measure of how loose it can be.

The policy samples in its own dtype, on ``args.engine`` (transformers or vLLM, :mod:`rewardlab.models.engines`).
Prompts keep their last ``max_prompt_length`` tokens (None: what fits the policy with ``max_new_tokens``); the
summary records the cap and the number of truncated prompts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response
from rewardlab.evaluate.plots import plotting
from rewardlab.io import write_json_atomic, write_text_atomic
from rewardlab.models.engines import policy_sampler
from rewardlab.models.generation import count_truncated, prompt_length_cap
from rewardlab.optimize.bon import bon_estimate, bon_kl, duplicate_rate
from rewardlab.optimize.common import step_seed
from rewardlab.optimize.fits import fit_bon
from rewardlab.optimize.gold import plot_overoptimization
from rewardlab.optimize.progress import RunProgress
from rewardlab.rewards.base import Reward
from rewardlab.rewards.shaping import calibrate
from rewardlab.tracking import RunTracker


@dataclass
class BoNArgs:
    n_max: int = 64  # N samples per prompt
    ns: list[int] = field(default_factory=list)  # n values to report (empty: powers of 2 up to N, and N)
    max_new_tokens: int = 32
    max_prompt_length: int | None = None  # prompt tokens kept (their end); None: what fits the policy
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 64
    calibration_samples: int = 2
    report_to: str = "none"  # also log the table (step = n) to: tensorboard | wandb | none | a comma list
    engine: str = "transformers"  # policy sampling engine: transformers | vllm


def default_ns(N: int) -> list[int]:
    """1, 2, 4, ... ≤ N, plus N itself."""
    ns = [2**i for i in range(int(math.log2(N)) + 1)]
    return ns if ns[-1] == N else ns + [N]


KL_NOTE = ("kl is the upper bound KL(π_BoN ‖ π₀) ≤ log n − (n−1)/n (Beirami et al. 2024), exact only when the n "
           "samples are distinct with continuous rewards; duplicate_rate: fraction of samples that repeat another "
           "sample's response to the same prompt (summary: among all N samples; table: expected among n)")


def _text(response: Response) -> str:
    return response if isinstance(response, str) else json.dumps(response, sort_keys=True)


def bon_curve(proxy: torch.Tensor, gold: torch.Tensor | None, ns: Sequence[int],
              responses: Sequence[Sequence[Response]] | None = None) -> list[dict[str, float]]:
    """Table rows ``{n, kl, sqrt_kl, proxy, gold, gold_se[, duplicate_rate]}`` averaged over prompts.

    ``proxy``, ``gold``: ``[P, N]`` scores of N samples for each of P prompts. ``kl`` is the bound
    ``log n − (n−1)/n``. ``gold_se`` is the standard error of the mean over prompts (each prompt's estimate is
    unbiased; prompts are independent). ``responses`` (P lists of N): adds the mean over prompts of the expected
    duplicate rate among n samples (:func:`rewardlab.optimize.bon.duplicate_rate`).
    """
    est_p = bon_estimate(proxy, proxy, ns)
    est_g = bon_estimate(proxy, gold, ns) if gold is not None else None
    P = proxy.shape[0]
    dup = None
    if responses is not None:
        if len(responses) != P or any(len(r) != proxy.shape[1] for r in responses):
            raise ValueError(f"responses must be {P} lists of {proxy.shape[1]}")
        dup = torch.tensor([duplicate_rate([_text(x) for x in r], ns) for r in responses]).mean(0)
    rows = []
    for j, n in enumerate(ns):
        kl = float(bon_kl(int(n)))
        row = {"n": int(n), "kl": kl, "sqrt_kl": math.sqrt(kl), "proxy": est_p[:, j].mean().item()}
        if est_g is not None:
            row["gold"] = est_g[:, j].mean().item()
            row["gold_se"] = (est_g[:, j].std().item() / math.sqrt(P)) if P > 1 else float("nan")
        if dup is not None:
            row["duplicate_rate"] = dup[j].item()
        rows.append(row)
    return rows


def run_best_of_n(policy, tokenizer, reward: Reward, prompts: Sequence[Prompt], args: BoNArgs | None = None,
                  gold: Reward | None = None, output_dir: str | os.PathLike | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Sample N per prompt, score proxy (and gold), write ``bon_table.csv`` and ``summary.json``, then
    ``gold_vs_kl.png`` (with the fit ``gold(d) = d(α − βd)``); returns the summary. The results are on disk before
    plotting starts: a plotting failure raises :class:`~rewardlab.evaluate.plots.PlotError` naming them.
    ``progress``: a bar over the generation batches and the scoring passes (:mod:`rewardlab.optimize.progress`)."""
    args = args or BoNArgs()
    tracking = RunTracker(args.report_to, output_dir, "bon", asdict(args))  # refuses a missing package now
    t0 = time.perf_counter()
    N = args.n_max
    ns = sorted(set(args.ns)) if args.ns else default_ns(N)
    cap = prompt_length_cap(policy, args.max_new_tokens, args.max_prompt_length)
    calibrated = [r for r in (reward, gold) if r is not None and callable(getattr(r, "calibrate", None))]
    batches = math.ceil(len(prompts) * N / args.batch_size)
    cal_batches = math.ceil(len(prompts) * args.calibration_samples / args.batch_size)
    bar = RunProgress("best-of-n", len(calibrated) * cal_batches + batches + 1 + (gold is not None),
                      enabled=progress, unit="batch", t0=t0)
    done = 0

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        bar.update(done, what)

    try:
        with policy_sampler(args.engine, policy, tokenizer) as sample:  # shut down before the rewards score
            refs = [sample(policy, tokenizer, prompts, args.calibration_samples, args.max_new_tokens,
                           args.temperature, args.top_p, step_seed(args.seed, 0, 3), args.batch_size, cap,
                           lambda _: tick("calibrating")) for _ in calibrated]
            ro = sample(policy, tokenizer, prompts, N, args.max_new_tokens, args.temperature, args.top_p, args.seed,
                        args.batch_size, cap, lambda _: tick(f"sampling {N} per prompt"))
        for r, ref in zip(calibrated, refs):
            calibrate(r, ref.prompts, ref.responses)
        with torch.no_grad():
            bar.update(done, "scoring (proxy)")  # the live bar names the running pass
            proxy = reward.score(ro.prompts, ro.responses).float().view(len(prompts), N)
            tick("scored (proxy)")
            gold_s = None
            if gold is not None:
                bar.update(done, "scoring (gold)")
                gold_s = gold.score(ro.prompts, ro.responses).float().view(len(prompts), N)
                tick("scored (gold)")
    finally:
        bar.close()
    groups = [[_text(x) for x in ro.responses[i * N:(i + 1) * N]] for i in range(len(prompts))]
    rows = bon_curve(proxy, gold_s, ns, groups)
    dup_N = [duplicate_rate(g, [N])[0] for g in groups]
    fit = None
    if gold_s is not None:
        fit = fit_bon([r["sqrt_kl"] for r in rows], [r["gold"] - rows[0]["gold"] for r in rows]).as_dict()
    summary = {"algorithm": "best-of-n", "args": asdict(args), "n_prompts": len(prompts), "max_prompt_length": cap,
               "truncated_prompts": count_truncated(tokenizer, prompts, cap), "table": rows,
               "kl_note": KL_NOTE, "duplicate_rate": sum(dup_N) / len(dup_N),
               "prompts_with_duplicates": sum(d > 0 for d in dup_N),
               "gao_fit": fit, "wall_time_s": round(time.perf_counter() - t0, 2)}
    if gold_s is not None:
        best = max(rows, key=lambda r: r["gold"])
        summary["gold_peak"] = {"n": best["n"], "gold": best["gold"], "sqrt_kl": best["sqrt_kl"]}
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(out / "bon_table.csv", buf.getvalue())
        write_json_atomic(out / "summary.json", summary)
        for row in rows:
            tracking.log({"kind": "bon", **row}, step=row["n"])
        tracking.close()
        with plotting(out / "gold_vs_kl.png", out / "summary.json"):
            plot_overoptimization([r["sqrt_kl"] for r in rows], [r["proxy"] for r in rows],
                                  [r["gold"] for r in rows] if gold_s is not None else None, fit,
                                  out / "gold_vs_kl.png", "best-of-n: proxy and gold vs √KL bound",
                                  xlabel="√(log n − (n−1)/n), an upper bound on √KL(π_BoN ‖ π₀)")
    return summary
