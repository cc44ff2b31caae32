"""Preference strength from an ensemble of reward models, and what to do with the pairs it doubts.

Secrets of RLHF in Large Language Models Part II: Reward Modeling (Wang et al. 2024, arXiv 2401.06080), §2.2–2.4.
With M reward models r_1..r_M (the paper: M = 10 RMs trained on the same pairs in different orders), pair i has

    d_{i,m} = r_m(x_i, y_c) − r_m(x_i, y_r)                                  the preference difference under RM m
    μ̂_i = (1/M) Σ_m d_{i,m},   σ̂_i = sqrt((1/M) Σ_m (d_{i,m} − μ̂_i)²)      Eq. 4 (population std: 1/M, not 1/(M−1))

μ̂_i < 0: the RMs vote against the label (the paper finds ~25% of HH-RLHF so, and flips its lowest 20%); μ̂_i ≈ 0:
an ambiguous pair. A pair is *flagged* when μ̂_i < ``threshold`` (default 0), or when it is among the ``fraction``
of pairs with the lowest μ̂. :func:`plan` says what each action writes:

- ``report``: every pair as it is;
- ``flip``:   flagged pairs with chosen and rejected swapped (§2.4.1, "Flip");
- ``drop``:   flagged pairs removed;
- ``smooth``: label smoothing on the flagged pairs only (Eq. 5, "Soft Label"):
  ``L_i = −(1 − ε) log σ(Δ_i − m_i) − ε log σ(−(Δ_i − m_i))``. Rows carry no per-pair ε, so the pair is written
  twice: as labelled with weight (1 − ε)·w, and swapped with weight ε·w and margin −m_i. train's weighted BT loss
  ``w·(−log σ(r_c − r_r − m))`` summed over the two rows is exactly ``w·L_i`` (tested); train normalizes each batch by
  its summed weight, and the two rows may fall in different batches, so an epoch's loss matches up to that.

Adaptive margin (Eq. 6, §2.4.2; "Margin" for all pairs): ``margin_i = s·μ̂_i`` of the row *as written* (−s·μ̂_i
once swapped) in the rows' ``margin`` field, which train's BT loss reads: ``−log σ(r_c − r_r − margin)`` (Llama 2's
form; Eq. 6 as printed puts μ̂ outside σ, where it is a constant without gradient — the text and its reference,
Llama 2, mean it inside). A negative μ̂ gives a negative margin, as the paper's "Soft Label + Margin" has it.

Every written row keeps its fields and gains ``strength_mean`` (μ̂ of the row as written: the sign follows a swap),
``strength_std`` (σ̂) and ``strength_flagged``; the row schema stays what ``train`` reads.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ACTIONS = ("report", "flip", "drop", "smooth")


def preference_strength(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 4: ``d`` [M, n] reward differences r_m(chosen) − r_m(rejected) -> (μ̂ [n], σ̂ [n]), σ̂ with 1/M."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1:
        raise ValueError(f"expected differences of shape [M >= 1, n], got {d.shape}")
    mean = d.mean(0)
    return mean, np.sqrt(((d - mean) ** 2).mean(0))


def flag_pairs(mean: np.ndarray, threshold: float = 0.0, fraction: float | None = None) -> np.ndarray:
    """Boolean [n]: μ̂ < ``threshold``, or (``fraction`` given) the ⌊fraction·n⌋ pairs of lowest μ̂ (ties: first
    in file order)."""
    mean = np.asarray(mean, dtype=np.float64)
    if fraction is None:
        return mean < threshold
    k = int(math.floor(fraction * len(mean) + 1e-9))
    flagged = np.zeros(len(mean), dtype=bool)
    flagged[np.argsort(mean, kind="stable")[:k]] = True
    return flagged


@dataclass
class Plan:
    """What to write, one entry per output row: the input pair ``index``, whether chosen/rejected are ``swapped``,
    the factor on its ``weight``, the ``strength`` μ̂ of the row as written (sign follows the swap), σ̂ ``spread``
    and ``flagged``. ``margin(s)`` = s·strength."""

    index: np.ndarray
    swapped: np.ndarray
    weight: np.ndarray
    strength: np.ndarray
    spread: np.ndarray
    flagged: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def margin(self, scale: float = 1.0) -> np.ndarray:
        return scale * self.strength


def plan(mean: np.ndarray, std: np.ndarray, flagged: np.ndarray, action: str, smoothing: float = 0.1) -> Plan:
    """The output rows of ``action`` (see the module docstring), in input order (a smoothed pair's swapped copy
    right after it)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    mean, std, flagged = (np.asarray(a) for a in (mean, std, flagged))
    idx, swap, weight = [], [], []
    for i, f in enumerate(flagged.tolist()):
        if f and action == "drop":
            continue
        if f and action == "smooth":
            idx += [i, i]
            swap += [False, True]
            weight += [1.0 - smoothing, smoothing]
            continue
        idx.append(i)
        swap.append(bool(f and action == "flip"))
        weight.append(1.0)
    index = np.array(idx, dtype=np.int64)
    swapped = np.array(swap, dtype=bool)
    sign = np.where(swapped, -1.0, 1.0)
    return Plan(index, swapped, np.array(weight, dtype=np.float64), sign * mean[index], std[index], flagged[index])


def distribution_lines(mean: np.ndarray, std: np.ndarray, groups: int = 10) -> list[str]:
    """The strength distribution as the paper shows it (Fig. 1–2): quantiles of μ̂ and σ̂, the share below 0, and
    the pairs sorted by μ̂ in ``groups`` equal groups with each group's mean μ̂ and mean σ̂."""
    q = (0, 10, 25, 50, 75, 90, 100)

    def quantiles(x: np.ndarray) -> str:
        return "  ".join(f"p{p}={v:+.3g}" for p, v in zip(q, np.percentile(x, q)))

    lines = [f"mean strength μ̂:  {quantiles(mean)}",
             f"spread σ̂:         {quantiles(std)}",
             f"μ̂ < 0: {int((mean < 0).sum())} of {len(mean)} pairs ({(mean < 0).mean():.1%}); |μ̂| < σ̂ "
             f"(within one spread of 0: ambiguous): {int((np.abs(mean) < std).sum())}"]
    order = np.argsort(mean, kind="stable")
    parts = [p for p in np.array_split(order, min(groups, len(mean))) if len(p)]
    lines.append("by μ̂ (lowest first), per group of pairs: mean μ̂ / mean σ̂")
    lines.append("  " + "  ".join(f"{mean[p].mean():+.3g}/{std[p].mean():.3g}" for p in parts))
    return lines


def _plain(x: Any) -> Any:
    """JSON for values read from Parquet / datasets (numpy scalars and arrays)."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def written_rows(raw: Sequence[dict], p: Plan, margin_scale: float | None) -> list[dict]:
    """The output rows of plan ``p`` over the input rows ``raw`` (their fields kept): swapped where the plan says,
    ``weight`` multiplied, ``margin`` = margin_scale·μ̂ as written (None: the row's own margin, negated if swapped),
    and the strength columns."""
    out = []
    for k in range(len(p)):
        row = dict(raw[p.index[k]])
        swapped = bool(p.swapped[k])
        if swapped:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
        if p.weight[k] != 1.0:
            row["weight"] = float(row.get("weight", 1.0)) * float(p.weight[k])
        if margin_scale is not None:
            row["margin"] = float(margin_scale * p.strength[k])
        elif swapped and row.get("margin"):
            row["margin"] = -float(row["margin"])
        row["strength_mean"] = float(p.strength[k])
        row["strength_std"] = float(p.spread[k])
        row["strength_flagged"] = bool(p.flagged[k])
        out.append(row)
    return out


def ensemble_differences(specs: Sequence[str], pairs: Sequence[Any], *, batch_size: int = 32, chunk_rows: int = 512,
                         device: str = "auto", dtype: str = "auto", chat_template: str | None = None,
                         log: Callable[[str], None] = print) -> np.ndarray:
    """d [M, n]: r_m(chosen) − r_m(rejected) of every pair under every reward spec, one reward loaded at a time."""
    from rewardlab.errors import UserError
    from rewardlab.models.device import resolve_device
    from rewardlab.rewards.ensemble import ready_for_scoring
    from rewardlab.rewards.records import score_rows
    from rewardlab.rewards.registry import load_reward

    dev = str(resolve_device(device))
    d = np.zeros((len(specs), len(pairs)))
    for m, spec in enumerate(specs):
        r = load_reward(spec, device=dev, dtype=dtype, chat_template=chat_template)
        for line in ready_for_scoring(r, spec):
            log(line)
        if hasattr(r, "batch_size"):
            r.batch_size = batch_size
        for start in range(0, len(pairs), chunk_rows):
            recs = score_rows(r, pairs[start : start + chunk_rows])
            d[m, start : start + len(recs)] = [x["chosen_score"] - x["rejected_score"] for x in recs]
        bad = np.flatnonzero(~np.isfinite(d[m]))
        if len(bad):
            raise UserError(*[f"{pairs[i].source}: reward {spec} scored this pair {d[m, i]} (not a finite number)"
                              for i in bad[:20]])
        log(f"{spec}: accuracy on the labels {(d[m] > 0).mean():.3f} (ties wrong)")
        del r
    return d


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def denoise_file(file: Path, rewards: Sequence[str], output: Path | None, *, action: str = "report",
                 threshold: float = 0.0, fraction: float | None = None, smoothing: float = 0.1,
                 margin_scale: float | None = None, batch_size: int = 32, device: str = "auto",
                 dtype: str = "auto", chat_template: str | None = None, split: str | None = None,
                 skip_invalid: bool = False, log: Callable[[str], None] = _stderr) -> list[str]:
    """Measure every pair's strength under the ``rewards`` (Eq. 4), flag the weak ones and write ``output`` (JSONL,
    atomically; optional for ``report``) as ``action`` says; ``margin_scale`` s writes margin = s·μ̂. Returns the
    report lines."""
    from rewardlab.data.load import DEFAULT_MAX_LINE_BYTES, load_pairs
    from rewardlab.data.read import read_rows
    from rewardlab.io import write_text_atomic

    pairs = load_pairs(file, split=split, skip_invalid=skip_invalid)
    d = ensemble_differences(rewards, pairs, batch_size=batch_size, device=device, dtype=dtype,
                             chat_template=chat_template, log=log)
    mean, std = preference_strength(d)
    flagged = flag_pairs(mean, threshold, fraction)
    rule = f"the lowest {fraction:g} by μ̂" if fraction is not None else f"μ̂ < {threshold:g}"
    lines = [f"{file}: {len(pairs)} pairs, M = {len(rewards)} reward models", *distribution_lines(mean, std),
             f"flagged ({rule}): {int(flagged.sum())} pairs ({flagged.mean():.1%})"]
    agree = (np.sign(d) == np.sign(d[0])).all(0) & (d[0] != 0)
    lines.append(f"all {len(rewards)} RMs agree on the sign of Δ for {agree.mean():.1%} of the pairs")
    p = plan(mean, std, flagged, action, smoothing)
    if output is None:
        return lines
    wanted = {pr.source.line for pr in pairs}
    raw = {line: value for line, value in read_rows(Path(file), DEFAULT_MAX_LINE_BYTES, split) if line in wanted}
    rows = written_rows([raw[pr.source.line] for pr in pairs], p, margin_scale)
    write_text_atomic(output, "".join(json.dumps(r, ensure_ascii=False, default=_plain) + "\n" for r in rows))
    did = {"report": "kept as labelled", "flip": "swapped", "drop": "dropped",
           "smooth": f"written twice (weights 1−ε and ε, ε = {smoothing:g})"}[action]
    margin = f"; margin = {margin_scale:g}·μ̂ on every row" if margin_scale is not None else ""
    lines.append(f"wrote {len(rows)} rows -> {output} (flagged pairs {did}{margin})")
    return lines
