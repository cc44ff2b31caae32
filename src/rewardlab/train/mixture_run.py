"""``rewardlab mixture-train``: a MiCRo-style mixture of K Bradley–Terry heads with a context router, trained on a
data file's pairs into a checkpoint directory (``micro:DIR``): :func:`train_mixture_dir`."""

from __future__ import annotations

from pathlib import Path


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
