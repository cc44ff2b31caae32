"""``rewardlab mixture-train``: a MiCRo-style mixture of K Bradley–Terry heads with a context router, trained on a
data file's pairs into a checkpoint directory (``micro:DIR``): :func:`train_mixture_dir`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train_mixture_dir(data: Path, output: Path, *, base: str = "tiny", k: int = 2, epochs: int = 3,
                      batch_size: int = 16, lr: float = 1e-3, max_length: int = 256, balance: float = 0.1,
                      seed: int = 0, split: str | None = None, skip_invalid: bool = False, device: str = "auto",
                      dtype: str = "auto") -> list[float]:
    """Train the mixture on the pairs of ``data`` (annotators may disagree; no group labels) on ``device``, its
    forwards autocast to ``dtype`` (fp32 master weights), and save it to ``output``, which the new checkpoint
    replaces whole (no mix of old and new files); returns the mean loss per epoch."""
    from dataclasses import asdict

    from rewardlab.data.load import load_pairs
    from rewardlab.io import replacing_dir
    from rewardlab.models.formats.micro import save_mixture
    from rewardlab.train.mixture import MixtureConfig, fit_mixture

    pairs = load_pairs(data, split=split, skip_invalid=skip_invalid)
    cfg = MixtureConfig(k=k, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length, balance=balance,
                        seed=seed)
    model, tokenizer, history = fit_mixture(pairs, base, cfg, device=device, dtype=dtype)
    with replacing_dir(output) as tmp:
        save_mixture(model, tokenizer, tmp, {"history": history}, {"train": asdict(cfg)}, max_length=cfg.max_length)
    return history


def train_mixture_em_dir(data: Path, output: Path, *, user_field: str | None = None, group_field: str | None = None,
                         base: str = "tiny", k: int = 2, rounds: int = 5, epochs: int = 3, batch_size: int = 16,
                         lr: float = 1e-3, max_length: int = 256, seed: int = 0, split: str | None = None,
                         skip_invalid: bool = False, device: str = "auto", dtype: str = "auto") -> dict[str, Any]:
    """MaxMin-RLHF's reward mixture (:mod:`rewardlab.train.mixture_em`) on the pairs of ``data``: hard EM over the
    annotators named by ``user_field`` (none: every pair its own unit), or — ``group_field`` — one BT head per given
    group (K = the number of groups, heads in sorted group order). Saved to ``output`` as a mixture checkpoint
    (``micro:DIR``; ``maxmin:micro:DIR`` optimizes its worst group) with ``groups.json`` (each unit's group); the
    manifest names the groups. Returns what ``groups.json`` holds: method, field, k, group names, converged, one row
    per round (:class:`~rewardlab.train.mixture_em.EMResult`) and ``assignment`` — each unit's head (EM), or each head's
    group name (given groups)."""
    from dataclasses import asdict

    from rewardlab.data.load import load_pairs
    from rewardlab.errors import UserError
    from rewardlab.io import replacing_dir, write_json_atomic
    from rewardlab.models.formats.micro import save_mixture
    from rewardlab.train.mixture import MixtureConfig, build_mixture
    from rewardlab.train.mixture_em import fit_mixture_em

    if user_field and group_field:
        raise UserError("give --user-field (groups learned by EM) or --group-field (groups given), not both")
    pairs = load_pairs(data, split=split, skip_invalid=skip_invalid)
    field = user_field or group_field
    values = row_field(data, pairs, field, split) if field else None
    groups = None
    names = [f"group_{j}" for j in range(k)]
    if group_field:
        names = sorted(set(values), key=str)
        if len(names) < 2:
            raise UserError(f"{data}: --group-field {group_field}: {len(names)} group(s); MaxMin needs at least 2")
        k, index = len(names), {g: j for j, g in enumerate(names)}
        groups = [index[v] for v in values]
    cfg = MixtureConfig(k=k, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length, balance=0.0,
                        seed=seed)
    model, tokenizer = build_mixture(pairs, base, cfg, device=device)
    result = fit_mixture_em(model, tokenizer, pairs, values, cfg, rounds=rounds, groups=groups, dtype=dtype)
    report = {"method": "given groups" if group_field else "hard EM", "field": field, "k": k,
              "groups": [str(n) for n in names], "converged": result.converged, "rounds": result.history,
              "assignment": {str(u): names[g] if group_field else g for u, g in zip(result.units, result.assignment)}}
    entry = {"train": asdict(cfg), "em": {key: report[key] for key in ("method", "field", "groups", "converged")}}
    with replacing_dir(output) as tmp:
        save_mixture(model, tokenizer, tmp, {"history": result.history}, entry, max_length=cfg.max_length)
        write_json_atomic(Path(tmp) / "groups.json", report)
    return report


def row_field(data: Path, pairs: list, field: str, split: str | None = None) -> list[Any]:
    """The value of ``field`` in the raw row of each pair (matched by its ``FILE:LINE`` source); a pair whose row lacks
    it (or holds null, a list or an object) is a UserError naming every such row."""
    from rewardlab.data.load import DEFAULT_MAX_LINE_BYTES
    from rewardlab.data.read import read_rows
    from rewardlab.errors import UserError

    lines = {p.source.line for p in pairs}
    raw = {line: value for line, value in read_rows(Path(data), DEFAULT_MAX_LINE_BYTES, split) if line in lines}
    out, problems = [], []
    for p in pairs:
        v = raw.get(p.source.line, {}).get(field) if isinstance(raw.get(p.source.line), dict) else None
        if v is None or isinstance(v, (list, dict)):
            problems.append(f"{p.source}: {field}: " + ("missing" if v is None else "must be a string or a number"))
        out.append(v)
    if problems:
        raise UserError(*problems)
    return out
