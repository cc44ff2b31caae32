"""`rewardlab eval`: the teacher report. Imports only typer at module level; heavy imports happen inside.

Order of work: ``--output`` is checked first (creating nothing; it must not be one of the inputs) and locked against a
second writer (:func:`rewardlab.io.output_lock`), then the options, the data, the prompts, the policy (and its prompt
budget, ``--max-prompt-length``) and the rewards; the output directory is created by the report.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.models.device import ATTN_HELP, CHAT_TEMPLATE_HELP, device_option, dtype_option, read_chat_template


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


def eval_command(
    reward: str = typer.Argument(..., help="Reward spec: a checkpoint directory, python:MODULE:FN, ..."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for metrics.json, report.html, PNGs."),
    data: Path | None = typer.Option(None, "--data", help="Preference pairs or k-way (RB2) rows."),
    split: str | None = typer.Option(None, "--split", help="Split of a saved DatasetDict --data (default: train, "
                                     "or its only split)."),
    policy: Path | None = typer.Option(None, "--policy", help="HF causal LM directory, for teacher metrics."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompts for the policy (default: --data's)."),
    gold: str | None = typer.Option(None, "--gold", help="Gold/reference reward spec: on-policy accuracy."),
    num_samples: int = typer.Option(10, "--num-samples", "-m", help="Responses sampled per prompt."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    max_prompt_length: int | None = typer.Option(None, "--max-prompt-length", help="Prompt tokens kept (the last "
                                                 "ones; a leading bos stays). Default: the policy's positions − "
                                                 "--max-new-tokens (no cap without a position limit)."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_p: float = typer.Option(1.0, "--top-p"),
    max_prompts: int | None = typer.Option(None, "--max-prompts", help="Use only the first N prompts."),
    compare: list[str] = typer.Option([], "--compare", help="Another reward spec, or an earlier eval output "
                                      "directory (with metrics.json); repeatable."),
    sections: Path | None = typer.Option(None, "--sections", help="YAML section map (default: RB1)."),
    val_fraction: float = typer.Option(0.5, "--val-fraction", help="Pairs used to fit the temperature."),
    seed: int = typer.Option(0, "--seed"),
    device: str = device_option(),
    dtype: str = dtype_option(),
    chat_template: Path | None = typer.Option(None, "--chat-template", help=CHAT_TEMPLATE_HELP + " Applies to the "
                                              "evaluated reward models (MODEL and --compare), not to --gold."),
    attn_implementation: str | None = typer.Option(None, "--attn-implementation", help=ATTN_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows (each counted and named) "
                                      "instead of failing."),
) -> None:
    """Evaluate a reward model as a teacher: accuracy, RB-style scores, calibration, length bias, reward variance."""
    import json

    from rewardlab.data.load import load_prompts, load_rows
    from rewardlab.data.records import KWayRow, PreferencePair
    from rewardlab.data.tokenize import ChatTemplateError
    from rewardlab.errors import UserError
    from rewardlab.evaluate.report import write_report
    from rewardlab.evaluate.suite import EvalResult, evaluate_reward
    from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout
    from rewardlab.io import check_not_an_input, check_output_dir, output_lock, spec_paths
    from rewardlab.models.backbone import load_causal_lm
    from rewardlab.models.device import resolve_device, resolve_dtype
    from rewardlab.models.generation import count_truncated, prompt_length_cap
    from rewardlab.rewards.registry import load_reward

    check_output_dir(output)
    check_not_an_input(output, {"REWARD": spec_paths(reward), "--data": data, "--policy": policy,
                                "--prompts": prompts, "--gold": spec_paths(gold),
                                "--compare": [p for c in compare for p in spec_paths(c)], "--sections": sections,
                                "--chat-template": chat_template})
    with output_lock(output):  # one writer: a second eval into OUTPUT would mix its files with ours
        if data is None and policy is None:
            raise UserError("rewardlab eval: give --data FILE and/or --policy PATH (with --prompts)")
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        sec_map, weights = _load_sections(str(sections) if sections else None)
        rows = load_rows(data, split=split, skip_invalid=skip_invalid) if data is not None else None
        if rows and not all(isinstance(r, PreferencePair) for r in rows) and not all(isinstance(r, KWayRow)
                                                                                  for r in rows):
            kind = "rated (response + attributes)" if getattr(rows[0], "attributes", None) else "response"
            raise UserError(f"{rows[0].source}: expected preference pairs or k-way rows, found {kind} rows")
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
                typer.echo(f"{prompts or data}: {truncation['truncated_prompts']} of {len(prompt_list)} prompts are "
                           f"longer than {cap} tokens and keep their last {cap} (--max-prompt-length)", err=True)
            cfg = SamplingConfig(num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                                 top_p=top_p, seed=seed, max_prompt_length=cap)
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
                    typer.echo(f"warning: {prev} was computed on data {old.get('data')}, not {data}", err=True)
                results.append(EvalResult(_unique(f"{spec} ({doc['main']})", taken), old))
                continue
            r = load_reward(spec, device=str(dev), dtype=dtype, chat_template=read_chat_template(chat_template),
                            attn_implementation=attn_implementation)
            name = _unique(spec, taken)  # every reward is named by the spec as typed (variants of one dir differ)
            try:
                res = evaluate_reward(r, rows, name, sec_map, weights, rollout, gold_reward, val_fraction, seed, cfg)
            except ChatTemplateError as e:
                from rewardlab.rewards.scoring import locate_template_error

                raise locate_template_error(r, rows or [], e) from None
            res.metrics["data"] = str(data) if data else None
            results.append(res)
        meta = {"reward": reward, "data": str(data) if data else None, "split": split,
                "policy": str(policy) if policy else None, "gold": gold, "num_samples": num_samples if policy else None,
                "seed": seed, "compare": ", ".join(compare) or None, "device": str(dev),
                "dtype": str(torch_dtype).removeprefix("torch."), **truncation}
        paths = write_report(output, results, meta)
        for res in results:  # every compared model, not only the first
            s = res.metrics["summary"]
            ci = {k: s.get(f"{k}_ci") for k in s}
            shown = ", ".join(f"{k}={v:.3f}" + (f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if ci[k] and None not in ci[k]
                                                else "") for k, v in s.items() if isinstance(v, float))
            typer.echo(f"{res.name}: {shown}")
        if rollout is not None and len(results) > 1:
            typer.echo("for a verdict on which is the better teacher for this policy (direction first, checked by "
                       "gold-tracked probes): rewardlab teachers")
        typer.echo(f"wrote {paths['report.html']} and {len(paths) - 1} other files")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("eval")(eval_command)
