"""One `rewardlab teachers` run: shared sample → per-reward metrics and best-of-n → RL probes → verdict → files.

Order of work: the output directory is checked and locked first, then the inputs are read (prompts, ``--data``),
the policy is loaded and sampled once, the gold and every reward are loaded and score the shared sample, probes
run, and ``teachers.json`` is written (atomically) before the report and its figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.evaluate.suite import json_ready
from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout
from rewardlab.io import write_json_atomic
from rewardlab.rewards.base import Reward
from rewardlab.teachers.probes import ProbeConfig, bon_probe, rl_probe, score_shared, score_units, shared_metrics
from rewardlab.teachers.verdict import Candidate, decide

Log = Callable[[str], None]


@dataclass
class TeachersConfig:
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(num_samples=8, max_new_tokens=32))
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    bon: bool = True


def _direction(gold: bool, pairs: bool) -> str | None:
    return "on_policy_accuracy" if gold else "accuracy" if pairs else None


def measure(policy, tokenizer, rewards: dict[str, Reward], prompts: Sequence[Prompt], gold: Reward | None,
            pairs: Sequence[PreferencePair] | None, cfg: TeachersConfig, log: Log = lambda _: None
            ) -> dict[str, Any]:
    """Everything `teachers` measures, as a JSON-ready dict (``rewards`` keyed by spec, ``verdict``, ``sampling``,
    ``probe``). ``rewards`` maps the spec as the user typed it to its loaded Reward."""
    t0 = time.perf_counter()
    rollout = sample_rollout(policy, tokenizer, prompts, cfg.sampling)
    log(f"sampled {len(rollout)} responses ({cfg.sampling.num_samples} per prompt for {len(prompts)} prompts)")
    gold_s = score_shared(gold, rollout, "gold") if gold is not None else None
    pair_items = ([p.prompt for p in pairs for _ in (0, 1)], [x for p in pairs for x in (p.chosen, p.rejected)]) \
        if pairs else None
    pair_units = np.repeat(np.arange(len(pairs or ())), 2)  # a batch-dependent reward compares one pair per call
    results: dict[str, dict[str, Any]] = {}
    candidates: list[Candidate] = []
    direction = _direction(gold is not None, bool(pairs))
    for spec, reward in rewards.items():
        s = score_shared(reward, rollout, spec)
        ps = None
        if pair_items is not None:
            both = score_units(reward, *pair_items, pair_units, description=f"scoring {spec} on --data")
            ps = (both[0::2], both[1::2])
        metrics, reps = shared_metrics(s, rollout.group, gold_s, ps, pairs)
        entry: dict[str, Any] = {"metrics": metrics}
        if gold_s is not None and cfg.bon:
            entry["best_of_n"] = bon_probe(s, gold_s, rollout.group, cfg.sampling.seed)
        results[spec] = entry
        ci = metrics.get(f"{direction}_ci") if direction else None
        candidates.append(Candidate(spec, {k: metrics[k] for k in ("accuracy", "on_policy_accuracy",
                                                                    "reward_variance")},
                                    direction, tuple(ci) if ci else None, reps["reward_variance"]))
        log(f"{spec}: RV {metrics['reward_variance']:.3f}" + (f", on-policy accuracy "
                                                              f"{metrics['on_policy_accuracy']:.3f}"
                                                              if metrics.get("on_policy_accuracy") is not None
                                                              else ""))
    probe = cfg.probe
    if gold is not None and probe.steps > 0:
        for c in candidates:
            runs = []
            for j in range(probe.seeds):
                runs.append(rl_probe(policy, tokenizer, rewards[c.reward], results[c.reward]["metrics"]["reward_mean"],
                                     results[c.reward]["metrics"]["reward_std"], prompts, gold, probe,
                                     seed=probe.seed + j, max_prompt_length=cfg.sampling.max_prompt_length))
                log(f"probe {c.reward} seed {probe.seed + j}: gold {runs[-1]['gold_gain']:+.4f}, proxy "
                    f"{runs[-1]['proxy_gain']:+.3f}, KL {runs[-1]['kl']:.4f} ({runs[-1]['wall_time_s']:.0f} s)")
            results[c.reward]["rl_probe"] = runs
            c.gains = np.array([r["gold_gain"] for r in runs])
            c.proxy_gains = np.array([r["proxy_gain"] for r in runs])
    verdict = decide(candidates)
    return json_ready({"verdict": verdict, "rewards": results, "sampling": asdict(cfg.sampling),
                       "probe": asdict(probe) | {"ran": gold is not None and probe.steps > 0},
                       "n_prompts": len(prompts), "n_responses": len(rollout),
                       "gold_mean": None if gold_s is None else float(gold_s.mean()),
                       "wall_time_s": round(time.perf_counter() - t0, 2)})


def write_outputs(out: Path, doc: dict[str, Any]) -> dict[str, Path]:
    """``teachers.json`` first, then ``report.html`` and ``teachers.png`` (a plotting failure leaves the JSON)."""
    from rewardlab.teachers.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "teachers.json", doc)
    return {"teachers.json": out / "teachers.json", **write_report(out, doc)}


def run_teachers(policy: str, rewards: Sequence[str], prompts_path: str | Path, output: str | Path,
                 gold: str | None = None, data: str | Path | None = None, split: str | None = None,
                 cfg: TeachersConfig | None = None, max_prompts: int | None = None, device: str = "auto",
                 dtype: str = "auto", chat_template: str | None = None, skip_invalid: bool = False,
                 log: Log = lambda _: None
                 ) -> dict[str, Any]:
    """The whole `teachers` command (see the module docstring); returns the ``teachers.json`` document."""
    import torch

    from rewardlab.data.load import load_prompts, load_rows
    from rewardlab.errors import UserError
    from rewardlab.io import check_not_an_input, check_output_dir, output_lock, spec_paths
    from rewardlab.models.backbone import load_policy
    from rewardlab.models.device import resolve_device
    from rewardlab.models.engines import check_engine
    from rewardlab.models.generation import count_truncated, prompt_length_cap
    from rewardlab.rewards.registry import load_reward

    cfg = cfg or TeachersConfig()
    check_engine(cfg.sampling.engine)  # vLLM missing: exit 2 before anything is created
    out = check_output_dir(output)
    check_not_an_input(output, {"--policy": policy, "--prompts": prompts_path, "--data": data,
                                "--reward": [p for spec in rewards for p in spec_paths(spec)],
                                "--gold": spec_paths(gold)})
    if not rewards:
        raise UserError("rewardlab teachers: give at least one --reward SPEC")
    if len(set(rewards)) != len(rewards):
        raise UserError(f"--reward: {', '.join(sorted({r for r in rewards if list(rewards).count(r) > 1}))} given "
                        "twice; each reward is named by its spec")
    if cfg.sampling.num_samples < 2:
        raise UserError(f"--num-samples must be >= 2 (reward variance and on-policy pairs need two samples of a "
                        f"prompt), got {cfg.sampling.num_samples}")
    if cfg.probe.steps < 0 or cfg.probe.seeds < 1:
        raise UserError("--probe-steps must be >= 0 and --probe-seeds >= 1")
    with output_lock(out):  # one writer from here on: a second run would mix its report with ours
        pairs = None
        if data is not None:
            rows = load_rows(data, split=split, skip_invalid=skip_invalid)
            if rows and not all(isinstance(r, PreferencePair) for r in rows):
                raise UserError(f"{rows[0].source}: --data for teachers takes preference pairs (prompt, chosen, "
                                "rejected); score k-way rows with `rewardlab eval`")
            pairs = rows
        prompts = load_prompts(prompts_path)[:max_prompts] if max_prompts else load_prompts(prompts_path)
        if not prompts:
            raise UserError(f"{prompts_path}: no prompts")
        dev = resolve_device(device)
        torch.manual_seed(cfg.sampling.seed)
        model, tokenizer = load_policy(policy, prompts, dev, seed=cfg.sampling.seed)
        cap = prompt_length_cap(model, cfg.sampling.max_new_tokens, cfg.sampling.max_prompt_length)
        cfg.sampling.max_prompt_length = cap
        if truncated := count_truncated(tokenizer, prompts, cap):
            log(f"{prompts_path}: {truncated} of {len(prompts)} prompts are longer than {cap} tokens and keep their "
                f"last {cap} (--max-prompt-length)")
        loaded = {spec: load_reward(spec, device=str(dev), dtype=dtype, chat_template=chat_template)
                  for spec in rewards}
        gold_reward = load_reward(gold, device=str(dev), dtype=dtype) if gold else None
        if gold_reward is None:
            log("no --gold: on-policy accuracy, best-of-n and RL probes need one; direction is checked "
                + ("off-policy on --data" if pairs else "nowhere"))
        doc = measure(model, tokenizer, loaded, prompts, gold_reward, pairs, cfg, log)
        doc["inputs"] = {"policy": policy, "rewards": list(rewards), "prompts": str(prompts_path), "gold": gold,
                         "data": None if data is None else str(data), "split": split, "device": str(dev),
                         "truncated_prompts": truncated}
        doc["files"] = {k: str(v) for k, v in write_outputs(Path(out), doc).items()}
        return doc
