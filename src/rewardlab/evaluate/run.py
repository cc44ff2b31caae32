"""The teacher report of ``rewardlab eval`` (:func:`run_eval`) and the process-reward metrics of
``rewardlab eval-prm`` (:func:`run_eval_prm`), from their options to the files they write.

Order of work of :func:`run_eval`: the options, the data, the prompts, the policy (and its prompt budget,
``max_prompt_length``) and the rewards; the output directory is created by the report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _load_sections(path: str | None) -> tuple[dict | None, dict | None]:
    """YAML: either ``{section: [subsets]}`` or ``{sections: {...}, weights: {subset: weight}}``."""
    if path is None:
        return None, None
    import yaml

    from rewardlab.errors import UserError

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}:1: cannot read sections YAML ({e})") from None
    sections = doc.get("sections", doc) if isinstance(doc, dict) else None
    weights = doc.get("weights") if isinstance(doc, dict) and "sections" in doc else None
    if not isinstance(sections, dict) or not all(isinstance(v, list) for v in sections.values()):
        raise UserError(f"{path}:1: expected a mapping section -> list of subset names")
    return sections, weights


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    taken.add(out)
    return out


def run_eval(reward: str, output: Path, *, data: Path | None = None, split: str | None = None,
             policy: Path | None = None, prompts: Path | None = None, gold: str | None = None, num_samples: int = 10,
             max_new_tokens: int = 64, max_prompt_length: int | None = None, temperature: float = 1.0,
             top_p: float = 1.0, max_prompts: int | None = None, compare: list[str] | None = None,
             sections: Path | None = None, val_fraction: float = 0.5, seed: int = 0, device: str = "auto",
             dtype: str = "auto", chat_template: Path | None = None, attn_implementation: str | None = None,
             skip_invalid: bool = False, rated: Path | None = None, engine: str = "transformers",
             log: Callable[[str], None] = _stderr) -> tuple[list[Any], dict[str, Path]]:
    """Evaluate the reward spec ``reward`` (and each of ``compare``: another spec, or an earlier eval output
    directory with its metrics.json) on ``data``'s pairs or k-way rows, on rated rows (``data`` of rated rows, or
    ``rated`` beside pairs in ``data``: per-attribute MSE, Pearson and Spearman) and/or as a teacher of ``policy``
    (samples of its ``prompts`` drawn on ``engine``, on-policy accuracy against ``gold``), and write the report
    (metrics.json, report.html, PNGs) into ``output``; returns the results
    (:class:`~rewardlab.evaluate.suite.EvalResult`, the main one first) and the written paths. ``log`` gets the
    warnings (truncated prompts, a compared output measured on other data)."""
    import json

    from rewardlab.data.load import load_prompts, load_rows
    from rewardlab.data.records import KWayRow, PreferencePair, RatedRow
    from rewardlab.data.tokenize import ChatTemplateError
    from rewardlab.errors import UserError
    from rewardlab.evaluate.report import write_report
    from rewardlab.evaluate.suite import EvalResult, evaluate_reward
    from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout
    from rewardlab.models.backbone import load_causal_lm
    from rewardlab.models.device import read_chat_template, resolve_device, resolve_dtype
    from rewardlab.models.engines import check_engine
    from rewardlab.models.generation import count_truncated, prompt_length_cap
    from rewardlab.rewards.registry import load_reward

    check_engine(engine)  # vLLM missing: exit 2 before anything is read or written
    compare = list(compare or [])
    if data is None and policy is None and rated is None:
        raise UserError("rewardlab eval: give --data FILE, --rated FILE and/or --policy PATH (with --prompts)")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    sec_map, weights = _load_sections(str(sections) if sections else None)
    rows = load_rows(data, split=split, skip_invalid=skip_invalid) if data is not None else None
    rated_rows = None
    if rows and all(isinstance(r, RatedRow) and r.attributes for r in rows):  # rated --data: attribute metrics
        if rated is not None:
            raise UserError(f"--data {data} holds rated rows already; give --rated FILE beside --data PAIRS")
        rated_rows, rows = rows, None
    elif rated is not None:
        from rewardlab.data.load import load_rated

        rated_rows = load_rated(rated, split=split, skip_invalid=skip_invalid)
    if rows and not all(isinstance(r, PreferencePair) for r in rows) and not all(isinstance(r, KWayRow)
                                                                              for r in rows):
        raise UserError(f"{rows[0].source}: expected preference pairs, k-way rows or rated rows (response + "
                        "attributes), found response rows")
    if rows and isinstance(rows[0], KWayRow):
        from rewardlab.data.load import DataError, summarize
        from rewardlab.evaluate.rewardbench import ties_row_problems

        if problems := ties_row_problems(rows):
            raise DataError(problems, summarize(problems, 0))

    rollout, gold_reward, cfg, truncation = None, None, None, {}
    if policy is not None:
        prompt_list = (load_prompts(prompts) if prompts else load_prompts(data, split=split)) if (prompts or data) \
            else None
        if not prompt_list:
            raise UserError("--policy needs --prompts FILE (or --data with prompts)")
        prompt_list = prompt_list[:max_prompts] if max_prompts else prompt_list
        lm, tok = load_causal_lm(policy, dev, dtype=torch_dtype)
        cap = prompt_length_cap(lm, max_new_tokens, max_prompt_length)
        truncation = {"n_prompts": len(prompt_list), "max_prompt_length": cap,
                      "truncated_prompts": count_truncated(tok, prompt_list, cap)}
        if truncation["truncated_prompts"]:
            log(f"{prompts or data}: {truncation['truncated_prompts']} of {len(prompt_list)} prompts are longer than "
                f"{cap} tokens and keep their last {cap} (--max-prompt-length)")
        cfg = SamplingConfig(num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=seed, max_prompt_length=cap, engine=engine)
        rollout = sample_rollout(lm, tok, prompt_list, cfg)
        gold_reward = load_reward(gold, device=str(dev), dtype=dtype) if gold else None
    elif gold:
        raise UserError("--gold needs --policy (on-policy accuracy is measured on policy samples)")

    taken: set[str] = set()
    results = []
    for spec in [reward, *compare]:
        prev = Path(spec) / "metrics.json"
        if spec != reward and prev.is_file():
            doc = json.loads(prev.read_text())
            old = doc["models"][doc["main"]]
            if old.get("data") != (str(data) if data else None):
                log(f"warning: {prev} was computed on data {old.get('data')}, not {data}")
            results.append(EvalResult(_unique(f"{spec} ({doc['main']})", taken), old))
            continue
        r = load_reward(spec, device=str(dev), dtype=dtype, chat_template=read_chat_template(chat_template),
                        attn_implementation=attn_implementation)
        name = _unique(spec, taken)  # every reward is named by the spec as typed (variants of one dir differ)
        try:
            res = evaluate_reward(r, rows, name, sec_map, weights, rollout, gold_reward, val_fraction, seed, cfg,
                                  rated=rated_rows)
        except ChatTemplateError as e:
            from rewardlab.rewards.records import locate_template_error

            raise locate_template_error(r, rows or [], e) from None
        res.metrics["data"] = str(data) if data else None
        if rated_rows:
            res.metrics["rated"] = str(rated or data)
        results.append(res)
    meta = {"reward": reward, "data": str(data) if data else None, "rated": str(rated) if rated else None,
            "split": split,
            "policy": str(policy) if policy else None, "gold": gold, "num_samples": num_samples if policy else None,
            "seed": seed, "compare": ", ".join(compare) or None, "device": str(dev),
            "dtype": str(torch_dtype).removeprefix("torch."), **truncation}
    return results, write_report(output, results, meta)


def run_eval_prm(model: str, data: list[Path], *, threshold: float = 0.5, output: Path | None = None,
                 report: Path | None = None, batch_size: int = 16, max_length: int | None = None,
                 split: str | None = None, skip_invalid: bool = False, device: str = "auto",
                 dtype: str = "auto") -> tuple[dict[str, Any], dict[str, Path]]:
    """Evaluate the process reward model ``model`` on each stepwise file of ``data`` (every row validated before the
    model is loaded): ProcessBench metrics, step-level F1 and best-of-n accuracy per aggregation
    (:func:`rewardlab.evaluate.processbench.evaluate_prm`), and ``mean_f1`` over several files. The summary is
    written to ``output`` (JSON) and the teacher report into ``report`` when given; returns the summary and the
    report's paths."""
    from rewardlab.data.stepwise import load_stepwise
    from rewardlab.evaluate.processbench import evaluate_prm, mean_f1
    from rewardlab.io import write_json_atomic
    from rewardlab.rewards.prm import PRMReward

    sets = {str(f): load_stepwise(f, split=split, skip_invalid=skip_invalid) for f in data}
    reward = PRMReward.from_pretrained(model, device=device, dtype=dtype, batch_size=batch_size,
                                       max_length=max_length)
    results = {name: evaluate_prm(reward, rows, threshold) for name, rows in sets.items()}
    summary = {"model": model, "separator": reward.separator, "max_length": reward.max_length,
               "threshold": threshold, "files": results}
    pbs = [r["processbench"] for r in results.values() if "processbench" in r]
    if len(results) > 1 and len(pbs) == len(results):
        summary["mean_f1"] = mean_f1(pbs)
    if output is not None:
        write_json_atomic(output, summary)
    paths: dict[str, Path] = {}
    if report is not None:
        from rewardlab.evaluate.prm_report import write_prm_report

        paths = write_prm_report(report, summary)
    return summary, paths
