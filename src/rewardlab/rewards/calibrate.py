"""Reference statistics of a reward model, stored as ``normalization`` in its ``rewardlab.json``.

``rewardlab calibrate DIR`` scores a reference set of responses with the checkpoint and records

    μ = (1/N) Σ_i r_i,    σ = sqrt((1/N) Σ_i (r_i − μ)²)        (population std, as NormalizedReward and
                                                              EnsembleReward.calibrate use)

as ``{"mean": μ, "std": σ, "n": N, "source": {...}}``. A k-output checkpoint also gets ``"outputs": {"mean": [μ_j],
"std": [σ_j]}`` per output column, and its scalar ``mean``/``std`` are those of the mean over outputs (what the server
serves as its one reward). The reference set is

* ``--policy`` + ``--prompts``: ``-n`` responses sampled per prompt from a policy — the distribution the reward will
  score during RL; Zheng et al. 2023 ("Secrets of RLHF ... Part I: PPO") standardize rewards with such statistics,
  and the optimize loops standardize with initial-policy samples (:func:`rewardlab.rewards.shaping.calibrate`);
* ``--data``: the responses of a data file (chosen and rejected of pairs, every response of k-way or rated rows);
* both: the two sets pooled.

``rewardlab serve DIR --normalize`` and ``/v1/score`` with ``normalize`` then answer ``(r − μ)/σ``, and an ensemble
spec standardizes each member with its own manifest's statistics (:func:`rewardlab.rewards.ensemble.member_stats`).
``rewardlab train`` records the eval split's statistics the same way (``eval_normalization``, default on): the record
is :func:`rewardlab.models.normalization.normalization_record`, the manifest written by the format seam
(:func:`rewardlab.models.formats.bt.update_manifest`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.read import data_exists
from rewardlab.data.records import Prompt, Response
from rewardlab.errors import UserError
from rewardlab.models.normalization import normalization_record


def writable_manifest(model_dir: str | os.PathLike) -> Path:
    """``DIR/rewardlab.json`` of a BT / k-head rewardlab checkpoint that can be rewritten; UserError otherwise.
    Imported transformers directories (no manifest) and other reward families are refused: their loaders do not
    read a manifest's normalization."""
    from rewardlab.models.formats import ARMO, DPO, MICRO, bt

    d = Path(model_dir)
    for fmt, family in ((MICRO, "MiCRo mixture"), (DPO, "DPO run"), (ARMO, "ArmoRM")):
        if fmt.detect(d):
            raise UserError(f"{d}: a {family} checkpoint; calibrate takes a reward-model checkpoint "
                            "(rewardlab train --objective bt)")
    return bt.writable_manifest(d)


def write_normalization(model_dir: str | os.PathLike, record: dict[str, Any]) -> dict[str, Any] | None:
    """Set ``normalization`` in ``DIR/rewardlab.json`` atomically, keeping every other key; returns the old one."""
    from rewardlab.models.formats import bt

    writable_manifest(model_dir)
    return bt.update_manifest(model_dir, "normalization", record)


def rows_reference(path: Path, split: str | None = None, skip_invalid: bool = False
                   ) -> tuple[list[Prompt], list[Response], dict[str, Any]]:
    """(prompts, responses, source) from the responses of every row of a data file (rows checked: FILE:LINE)."""
    from rewardlab.data.load import load_rows
    from rewardlab.data.records import row_items
    from rewardlab.rewards.partial import file_fingerprint

    rows = load_rows(path, split=split, skip_invalid=skip_invalid)
    prompts, responses = [], []
    for row in rows:
        for _, response in row_items(row):
            prompts.append(row.prompt)
            responses.append(response)
    source = {"file": str(path), "sha256": file_fingerprint(Path(path)), "rows": len(rows),
              "responses": len(responses)} | ({"split": split} if split is not None else {})
    return prompts, responses, source


def policy_reference(policy: str, prompts_path: Path, samples: int, max_new_tokens: int, temperature: float = 1.0,
                     top_p: float = 1.0, seed: int = 0, batch_size: int = 64, max_prompts: int | None = None,
                     device: str = "auto", dtype: str = "auto", split: str | None = None,
                     engine: str = "transformers") -> tuple[list[Prompt], list[Response], dict[str, Any]]:
    """(prompts, responses, source): ``samples`` responses per prompt sampled from ``policy`` (a causal LM dir) on
    ``engine`` (:mod:`rewardlab.models.engines`)."""
    from rewardlab.data.load import load_prompts
    from rewardlab.models.backbone import load_causal_lm
    from rewardlab.models.device import resolve_device, resolve_dtype
    from rewardlab.models.engines import policy_sampler
    from rewardlab.rewards.partial import file_fingerprint

    prompts = load_prompts(prompts_path, split=split)[:max_prompts]
    dev = resolve_device(device)
    model, tokenizer = load_causal_lm(policy, device=dev, dtype=resolve_dtype(dtype, dev))
    with policy_sampler(engine, model, tokenizer) as sample:
        rollout = sample(model, tokenizer, prompts, samples, max_new_tokens, temperature=temperature, top_p=top_p,
                         seed=seed, batch_size=batch_size)
    source = {"policy": str(policy), "prompts": str(prompts_path), "sha256": file_fingerprint(Path(prompts_path)),
              "n_prompts": len(prompts), "samples_per_prompt": samples, "max_new_tokens": max_new_tokens,
              "temperature": temperature, "top_p": top_p, "seed": seed, "engine": engine}
    return rollout.prompts, rollout.responses, source


def check_calibrate_args(prompts: Path | None, policy: str | None, data: Path | None, samples: int,
                         max_new_tokens: int, engine: str = "transformers") -> None:
    """Every option problem at once, before anything is loaded (an unusable ``engine`` first, alone)."""
    from rewardlab.models.engines import check_engine

    check_engine(engine)
    problems = []
    if prompts is None and data is None:
        problems.append("give --prompts PROMPTS.jsonl with --policy POLICY, and/or --data FILE")
    if (prompts is None) != (policy is None):
        problems.append("--prompts and --policy go together (responses are sampled from POLICY on PROMPTS)")
    problems += [f"--{flag} must be >= 1, got {v}" for flag, v in (("n", samples), ("max-new-tokens", max_new_tokens))
                 if v < 1]
    problems += [f"{flag} {p}: no such file or directory" for flag, p in (("--prompts", prompts), ("--data", data))
                 if p is not None and not data_exists(p)]  # a file, a `datasets` directory or a hub dataset
    if problems:
        raise UserError(*problems)


def score_reference(reward: Any, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
    """Scores ``[N]`` / ``[N, k]`` of the reference responses (float32, CPU)."""
    return reward.score(list(prompts), list(responses)).detach().float().cpu()


def describe_source(source: Any) -> str:
    """A short phrase for a ``normalization.source``: which data / policy samples the stats were measured on."""
    if not isinstance(source, dict):
        return "an unrecorded reference set"
    parts = []
    if isinstance(source.get("data"), dict):
        parts.append(f"{source['data'].get('responses')} responses of {source['data'].get('file')}")
    if isinstance(source.get("policy"), dict):
        pol = source["policy"]
        parts.append(f"{pol.get('samples_per_prompt')} samples x {pol.get('n_prompts')} prompts of "
                     f"{pol.get('prompts')} from {pol.get('policy')}")
    if isinstance(source.get("eval_split"), dict):
        parts.append(f"the {source['eval_split'].get('responses')} eval-split responses of its training run")
    return " + ".join(parts) or "an unrecorded reference set"


def describe(record: dict[str, Any]) -> str:
    """One line: ``mean μ, std σ over N responses`` (+ per-output stats)."""
    text = f"mean {record['mean']:.6g}, std {record['std']:.6g} over {record['n']} responses"
    if "outputs" in record:
        pairs = zip(record["outputs"]["mean"], record["outputs"]["std"], strict=True)
        text += "; per output " + ", ".join(f"({m:.4g}, {s:.4g})" for m, s in pairs)
    return text


def calibrate_checkpoint(model: Path, *, data: Path | None = None, policy: str | None = None,
                         prompts: Path | None = None, samples: int = 4, max_new_tokens: int = 64,
                         temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 32,
                         max_prompts: int | None = None, device: str = "auto", dtype: str = "auto",
                         split: str | None = None, skip_invalid: bool = False, engine: str = "transformers"
                         ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``rewardlab calibrate``: score the reference set (``data``'s responses, checked before any model is loaded,
    and/or ``samples`` responses per prompt of ``prompts`` from ``policy``) with the checkpoint ``model`` and store
    the statistics as its manifest's ``normalization``; returns the new record and the one it replaced."""
    from rewardlab.rewards.model import ModelReward

    ref_prompts: list[Prompt] = []
    responses: list[Response] = []
    source: dict[str, Any] = {}
    if data is not None:  # cheap and checked row by row: before any model is loaded
        ref_prompts, responses, source["data"] = rows_reference(data, split, skip_invalid)
    if policy is not None:
        p, r, source["policy"] = policy_reference(policy, prompts, samples, max_new_tokens, temperature, top_p, seed,
                                                  batch_size, max_prompts, device, dtype, split, engine)
        ref_prompts, responses = ref_prompts + p, responses + r
    reward = ModelReward.from_pretrained(model, device=device, dtype=dtype, batch_size=batch_size)
    record = normalization_record(score_reference(reward, ref_prompts, responses), source, str(model))
    return record, write_normalization(model, record)
