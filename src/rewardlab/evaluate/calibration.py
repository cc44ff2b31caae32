"""Calibration of a reward model's preference probabilities p = σ(Δ/T): reliability diagram, ECE, Brier score,
NLL, and the temperature T fitted by NLL — kept only where it helps held-out ECE (:func:`held_out_temperature`).
Score conventions as in :mod:`rewardlab.evaluate.metrics`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rewardlab.evaluate.metrics import ArrayLike, as_numpy


def preference_probs(delta: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    """p = σ(Δ / T): the model's probability that the first response (chosen) wins. Shape ``[n]``."""
    d = as_numpy(delta) / temperature
    return 0.5 * (1.0 + np.tanh(0.5 * d))  # numerically stable sigmoid


def _labels(p: np.ndarray, labels: ArrayLike | None) -> np.ndarray:
    y = np.ones_like(p) if labels is None else as_numpy(labels)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} vs probabilities {p.shape}")
    return y


def reliability_diagram(p: ArrayLike, labels: ArrayLike | None = None, n_bins: int = 10) -> dict[str, list]:
    """Binned calibration data on the confidence ``c = max(p, 1-p)``.

    ``labels[i] = 1`` if the first response truly wins (default: all 1, i.e. p is P(chosen wins)). The prediction
    is "first wins" when p > 0.5, "second wins" when p < 0.5, and wrong when p == 0.5 (a tie). Bins are ``n_bins``
    equal-width bins over the confidence range [0.5, 1] (the last bin includes 1). Per bin: mean confidence,
    accuracy, count (empty bins have NaN confidence/accuracy).
    """
    p = as_numpy(p)
    y = _labels(p, labels)
    conf = np.maximum(p, 1.0 - p)
    correct = np.where(p > 0.5, y == 1, np.where(p < 0.5, y == 0, False)).astype(np.float64)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    cnt = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / cnt
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / cnt
    return {"edges": edges.tolist(), "confidence": mean_conf.tolist(), "accuracy": acc.tolist(),
            "count": cnt.tolist()}


def expected_calibration_error(p: ArrayLike, labels: ArrayLike | None = None, n_bins: int = 10) -> float:
    """ECE = Σ_b (n_b / n) · |acc_b − conf_b| over the bins of :func:`reliability_diagram` (Guo et al.
    2017)."""
    rd = reliability_diagram(p, labels, n_bins)
    cnt = np.array(rd["count"], dtype=np.float64)
    if cnt.sum() == 0:
        return math.nan
    gap = np.abs(np.array(rd["accuracy"]) - np.array(rd["confidence"]))
    return float(np.sum(np.where(cnt > 0, gap * cnt, 0.0)) / cnt.sum())


def brier_score(p: ArrayLike, labels: ArrayLike | None = None) -> float:
    """mean (p − y)²; y = 1 when the first response (chosen) truly wins."""
    p = as_numpy(p)
    return float(np.mean((p - _labels(p, labels)) ** 2))


def preference_nll(delta: ArrayLike, temperature: float = 1.0, labels: ArrayLike | None = None) -> float:
    """Mean negative log-likelihood −[y log σ(Δ/T) + (1−y) log σ(−Δ/T)] (stable via logaddexp)."""
    z = as_numpy(delta) / temperature
    y = _labels(z, labels)
    return float(np.mean(y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)))


def fit_temperature(
    delta: ArrayLike, labels: ArrayLike | None = None, bounds: tuple[float, float] = (1e-2, 1e2)
) -> float:
    """Temperature T minimizing :func:`preference_nll` of σ(Δ/T) on a validation split (Guo et al. 2017).

    One-dimensional bounded search over log T. On separable data (every Δ > 0) the NLL keeps falling as T → 0,
    so the result sits at ``bounds[0]``; the bounds keep it finite.
    """
    from scipy.optimize import minimize_scalar

    d = as_numpy(delta)
    res = minimize_scalar(lambda lt: preference_nll(d, math.exp(lt), labels),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-6})
    return float(math.exp(res.x))


def held_out_temperature(delta: ArrayLike, val: ArrayLike, test: ArrayLike, n_bins: int = 10, folds: int = 5,
                         seed: int = 0, bounds: tuple[float, float] = (1e-2, 1e2)) -> dict[str, Any]:
    """Temperature scaling of p = σ(Δ/T) that is kept only when it helps (Guo et al. 2017, with a guard).

    ``fitted``: T minimizing the NLL on the ``val`` pairs (:func:`fit_temperature`). It is *kept*
    (``temperature = fitted``) only when (1) the validation pairs are not separable — with every Δ > 0 the NLL
    falls as T → 0, the fit ends at ``bounds[0]`` and σ(Δ/T) ≈ 1 for every pair, so held-out ECE becomes
    1 − accuracy — and (2) ``folds``-fold cross-validation *within* ``val`` says it lowers ECE: each fold is scaled
    by the T fitted on the other folds, and the pooled ECE of those probabilities must be below the ECE of σ(Δ) on
    the same pairs. Otherwise ``temperature = 1``. The ``test`` pairs take no part in the choice; they report the
    ECE and NLL of σ(Δ) (``test_*_raw``), of the fitted T (``test_*_scaled``) and of the kept T (``test_*_kept``).
    """
    d = as_numpy(delta)
    val, test = np.asarray(val, dtype=int), np.asarray(test, dtype=int)
    lo, hi = bounds
    t = fit_temperature(d[val], bounds=bounds)
    at_bound = not lo * 1.01 < t < hi / 1.01
    separable = bool(np.all(d[val] > 0))
    k = min(folds, len(val))
    cv_raw = cv_scaled = math.nan
    if k >= 2:
        parts = np.array_split(np.random.default_rng(seed).permutation(val), k)
        p_cv = np.concatenate([preference_probs(d[part], fit_temperature(d[np.setdiff1d(val, part)], bounds=bounds))
                               for part in parts])
        order = np.concatenate(parts)
        cv_raw = expected_calibration_error(preference_probs(d[order]), None, n_bins)
        cv_scaled = expected_calibration_error(p_cv, None, n_bins)
    if separable or at_bound:
        kept, reason = 1.0, "the validation pairs are separable: the NLL has no finite minimizer" if separable \
            else "the fit ended at its search bound"
    elif not cv_scaled < cv_raw:
        kept, reason = 1.0, f"cross-validated ECE within the validation pairs does not improve ({cv_scaled:.4f} " \
            f"with T fitted on the other folds vs {cv_raw:.4f} at T = 1)"
    else:
        kept, reason = t, f"cross-validated ECE within the validation pairs improves ({cv_raw:.4f} -> {cv_scaled:.4f})"
    out: dict[str, Any] = {"temperature": kept, "fitted_temperature": t, "kept": kept != 1.0, "reason": reason,
                           "at_bound": at_bound, "n_val": int(len(val)), "n_test": int(len(test)),
                           "cv_ece_raw": cv_raw, "cv_ece_scaled": cv_scaled}
    for name, temp in (("raw", 1.0), ("scaled", t), ("kept", kept)):
        out[f"test_ece_{name}"] = expected_calibration_error(preference_probs(d[test], temp), None, n_bins)
        out[f"test_nll_{name}"] = preference_nll(d[test], temp)
    return out


def calibration(delta: ArrayLike, n_bins: int = 10, temperature: float = 1.0) -> dict[str, Any]:
    """ECE, Brier, NLL and reliability-diagram data of p = σ(Δ/T) for (chosen, rejected) pairs."""
    p = preference_probs(delta, temperature)
    return {"ece": expected_calibration_error(p, None, n_bins), "brier": brier_score(p),
            "nll": preference_nll(delta, temperature), "temperature": temperature,
            "reliability": reliability_diagram(p, None, n_bins)}


# -------------------------------------------------------------------------------------------- length bias
