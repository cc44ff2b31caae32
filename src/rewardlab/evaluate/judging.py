"""A generative judge measured on preference pairs (``rewardlab judge``): :func:`judge_pairs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def judge_pairs(spec: str, data: Path, *, max_pairs: int | None = None, split: str | None = None,
                skip_invalid: bool = False, device: str = "auto", dtype: str = "auto",
                output: Path | None = None) -> dict[str, Any]:
    """Run the judge ``spec`` (``judge:MODEL[:pairwise|pointwise][:KEY=VALUE,...]``) on the pairs of ``data``:
    accuracy (pairwise: P(chosen wins) > 0.5; pointwise: chosen scored higher), mean P(chosen) and the judge's own
    report (swap-consistency, position bias, label mass). Written to ``output`` as JSON (atomically) when given;
    returns the numbers."""
    from rewardlab.data.load import load_pairs
    from rewardlab.errors import UserError
    from rewardlab.io import write_json_atomic
    from rewardlab.rewards.judge import JudgeReward
    from rewardlab.rewards.registry import load_reward

    pairs = load_pairs(data, split=split, skip_invalid=skip_invalid)[:max_pairs]
    r = load_reward(spec, device=device, dtype=dtype)
    if not isinstance(r, JudgeReward):
        raise UserError(f"{spec!r} is not a judge: spec (judge:MODEL[:pairwise|pointwise])")
    prompts = [p.prompt for p in pairs]
    if r.config.mode == "pairwise":
        v = r.compare(prompts, [p.chosen for p in pairs], [p.rejected for p in pairs])
        out = {"accuracy": float((v.p > 0.5).float().mean()), "mean_p_chosen": float(v.p.mean())}
    else:
        s = r.score(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        out = {"accuracy": float((s[: len(pairs)] > s[len(pairs) :]).float().mean())}
    out = {"judge": spec, "pairs": len(pairs)} | out | r.report()
    if output:
        write_json_atomic(output, out)
    return out
