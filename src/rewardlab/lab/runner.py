"""`rewardlab lab`: run the experiments of a preset, print their numbers, write results.json, PNGs and report.html."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rewardlab.errors import UserError
from rewardlab.io import write_json_atomic, write_text_atomic
from rewardlab.lab.common import ExperimentResult, jsonable
from rewardlab.lab.experiments import coste, gao, par, razin, stepwise, transformer, two_groups
from rewardlab.lab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from rewardlab.lab.world import WorldConfig

MODULES: dict[str, Any] = {"razin": razin, "gao": gao, "coste": coste, "par": par, "two_groups": two_groups,
                           "transformer": transformer, "stepwise": stepwise}


@dataclass(frozen=True)
class Preset:
    seeds: int
    configs: dict[str, Any] = field(default_factory=dict)
    seeds_for: dict[str, int] = field(default_factory=dict)  # per-experiment seed counts (else ``seeds``)


def _full_world() -> WorldConfig:
    return replace(WorldConfig(), n_prompts=256, n_candidates=64)


PRESETS: dict[str, Preset] = {
    # Tabular levels take seconds per seed: 20 seeds (the sign test decides at 15 of 20), 40 for PAR (0.3 s per
    # seed; at 20, par-holds sat a seed from the threshold and flipped between seed sets). Coste stays at 20 (≈ 1.5 s
    # per seed; 40 did not settle its small effects on a third seed set, and cost half a minute). The tiny-GPT-2
    # level ('transformer', ~10 s per seed) keeps 5 (5 of 5 needed) to stay under 5 minutes with a CPU hog.
    "quick": Preset(seeds=20, configs={"razin": razin.RazinConfig(), "gao": gao.GaoConfig(),
                                      "coste": coste.CosteConfig(), "par": par.PARConfig(),
                                      "two_groups": two_groups.TwoGroupsConfig(),
                                      "transformer": transformer.TransformerConfig(),
                                      "stepwise": stepwise.StepwiseConfig()},
                    seeds_for={"transformer": 5, "par": 40}),
    "full": Preset(seeds=8, configs={
        "razin": razin.RazinConfig(world=_full_world(), n_pairs=(100, 300, 1000, 3000), late=400),
        "gao": gao.GaoConfig(world=_full_world(), n_pairs=(100, 300, 1000, 3000, 10000, 30000), bon_max_log2=14),
        "coste": coste.CosteConfig(world=replace(_full_world(), label_noise=0.25), members=5, bon_n=16384),
        "par": par.PARConfig(world=_full_world(), rl_steps=2000),
        "two_groups": two_groups.TwoGroupsConfig(world=_full_world()),
        "transformer": transformer.TransformerConfig(
            world=replace(transformer.LMWorldConfig(), n_layer=4, n_embd=128, pretrain_steps=1000),
            n_prompts=64, bon_samples=512, n_pairs=(100, 300, 1000, 3000, 10000), rloo_steps=200),
        "stepwise": stepwise.StepwiseConfig(n_test=2000)},
        seeds_for={"transformer": 4}),
}


def _world_summary(configs: dict[str, Any]) -> str:
    parts = []
    tab = next((c.world for c in configs.values() if isinstance(c.world, WorldConfig)), None)
    if tab is not None:
        parts.append(
            f"Tabular world: {tab.n_prompts} prompts × {tab.n_candidates} candidate answers, each a {tab.n_features}-"
            f"feature vector (feature 0 = a heavy-tailed 'length'); gold r* = prompt offset + prompt scale × (linear + "
            f"tanh interactions + a length term that rises up to ℓ*={tab.length_optimum:g} and falls beyond). π₀ = "
            f"softmax over the candidates with random logits (std {tab.policy_logit_std:g}) that avoid long answers; "
            f"preferences ~ σ((r*(a) − r*(b))/τ), τ={tab.label_temperature:g}, label noise {tab.label_noise:g} "
            "(Coste: 0.25 unless --label-noise is given). Proxies = linear or one-hidden-layer MLP RMs over the "
            "features, trained with the BT loss and centred per prompt (the loss does not identify a per-prompt "
            "constant). Gao uses 64 candidates per prompt; Razin's early claim is decided on an independent family "
            "of RMs in a 200 × 50 world (experiments/razin_family.py). Each seed draws a new world.")
    if "transformer" in configs:
        lm = configs["transformer"].world
        parts.append(
            f"Transformer world: strings over {lm.n_letters} letters from a random Markov chain; π₀ = a "
            f"{lm.n_layer}-layer, {lm.n_embd}-dim GPT-2 pre-trained for {lm.pretrain_steps} steps on it; gold = prompt "
            f"offset + mean letter value + a length term peaking at L*={lm.length_optimum:g}; proxies = tiny GPT-2 RMs "
            "trained with the project's BT trainer. π₀ and proxies are cached (safetensors) by config hash.")
    if "stepwise" in configs:
        sw = configs["stepwise"]
        parts.append(
            f"Stepwise world: {sw.world.steps}-step solutions of {sw.world.dim}-feature steps, a fraction "
            f"{sw.world.error_rate:g} with one mistake (visible in its step with strength v={sw.world.visibility:g}, "
            "or silent); an outcome RM on noisy final-answer labels vs a PRM on clean step labels, both logistic on "
            f"the same {sw.n_train} solutions, as best-of-{sw.bon_n} verifiers on {sw.n_test} problems.")
    return " ".join(parts)


def print_claims(console: Console, results: list[ExperimentResult]) -> None:
    table = Table(title="Claims", show_lines=True)
    for col in ("paper", "claim", "measured (mean ± sd over seeds)", "verdict"):
        table.add_column(col, overflow="fold")
    for r in results:
        for c in r.claims:
            style = {"reproduced": "green", "inconclusive": "yellow"}.get(c.verdict, "red")
            table.add_row(c.paper, c.statement, c.measured, f"[{style}]{c.verdict}[/{style}]")
    console.print(table)


def run_lab(output: Path, preset: str = "quick", only: list[str] | None = None, seeds: int | None = None,
            label_noise: float | None = None, seed_offset: int = 0, console: Console | None = None) -> dict:
    """Run the preset's experiments (or ``only`` those), write the outputs into ``output``; returns results.

    Seeds are ``seed_offset, seed_offset + 1, ...``: each seed draws a new world, so ``--seed-offset 5`` reruns every
    claim on worlds the default run never saw."""
    console = console or Console()
    if preset not in PRESETS:
        raise UserError(f"--preset: unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    names = list(only or PRESETS[preset].configs)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        raise UserError(f"--only: unknown experiment {unknown[0]!r} (choose from {', '.join(MODULES)})")
    if seed_offset < 0:
        raise UserError("--seed-offset: must be ≥ 0")
    if seeds is not None and seeds < 1:
        raise UserError("--seeds: must be at least 1")
    if label_noise is not None and not 0.0 <= label_noise < 0.5:
        raise UserError("--label-noise: must be in [0, 0.5)")
    n_seeds = seeds or PRESETS[preset].seeds
    seeds_of = {n: seeds or PRESETS[preset].seeds_for.get(n, n_seeds) for n in names}
    configs = {n: PRESETS[preset].configs[n] for n in names}
    if label_noise is not None:
        configs = {n: replace(c, world=replace(c.world, label_noise=label_noise)) for n, c in configs.items()}
    output.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tabular world is many tiny ops: one thread is ~10-50x faster on a busy machine
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the transformer level reloads tiny checkpoints: no "Loading weights" bar each
    results: list[ExperimentResult] = []
    timings: dict[str, float] = {}
    try:
        with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            tasks = {n: progress.add_task(n, total=configs[n].units(seeds_of[n])) for n in names}
            for n in names:
                t0 = time.perf_counter()
                res = MODULES[n].run(configs[n], list(range(seed_offset, seed_offset + seeds_of[n])),
                                     advance=lambda k, n=n: progress.advance(tasks[n], k))
                res.seconds = time.perf_counter() - t0
                timings[f"experiment: {n}"] = res.seconds
                for line in res.lines:
                    progress.console.print(line, highlight=False)
                results.append(res)
    finally:
        torch.set_num_threads(threads)
        if bars:
            hf_logging.enable_progress_bar()

    import rewardlab
    from rewardlab.lab.report import claims_markdown, write_report

    meta = {"preset": preset, "seeds": {n: list(range(seed_offset, seed_offset + k)) for n, k in seeds_of.items()},
            "seed_offset": seed_offset, "only": names, "label_noise_override": label_noise,
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "version": getattr(rewardlab, "__version__", "?"), "timings": timings,
            "world": _world_summary(configs),
            "configs": {n: jsonable(asdict(c)) for n, c in configs.items()}}
    claims = [c.as_dict() for r in results for c in r.claims]

    def write_results() -> dict:
        meta["wall_seconds"] = time.perf_counter() - t_start
        out = {"meta": meta, "claims": claims,
               "experiments": {r.name: {"title": r.title, "seconds": r.seconds, "lines": r.lines, "data": r.data}
                               for r in results}}
        write_json_atomic(output / "results.json", jsonable(out))
        write_text_atomic(output / "claims.md", claims_markdown(results) + "\n")
        return out

    write_results()  # the numbers are on disk before any plotting can fail
    from rewardlab.lab.figures import figure_function

    t0 = time.perf_counter()
    figures = {}
    for r in results:
        fn = figure_function(r.name)
        if fn is not None:
            figures[r.name] = fn(r.data, output, {c.id: c for c in r.claims})
    timings["figures"] = time.perf_counter() - t0
    out = write_results()
    write_report(results, figures, output, meta)
    print_claims(console, results)
    counts = {v: sum(c["verdict"] == v for c in claims) for v in (REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED)}
    console.print(f"{counts[REPRODUCED]}/{len(claims)} claims reproduced, {counts[INCONCLUSIVE]} inconclusive, "
                  f"{counts[NOT_REPRODUCED]} not reproduced · wall time {meta['wall_seconds']:.0f} s · report: "
                  f"{output / 'report.html'}")
    return out
