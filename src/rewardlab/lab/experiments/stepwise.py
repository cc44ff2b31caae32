"""Experiment — process vs outcome reward models as best-of-n verifiers (Lightman et al. 2023; Uesato et al. 2022).

A stepwise synthetic world, featurized and cheap (no transformer). Each solution is a chain of ``steps`` steps (think
of a multi-step arithmetic chain); with probability ``error_rate`` one step ``j* ~ U{0..L−1}`` is a mistake and every
later step carries the wrong value forward, so the final answer is correct iff there is no mistake. Features:

    step j:        x_j = ε_j + v · [j = j*] · u              (ε ~ N(0, I_d); u a unit vector of the world)
    final answer:  z   = ε  + a · [mistake] · u'             (the answer itself looks off, e.g. a failed check)

``v`` is how visible a mistake is in the step where it happens (0: "silent" errors, visible only in the answer).
Two verifiers are fit (logistic regression, Newton/IRLS with a small L2, on the same ``n_train`` solutions):

- **outcome RM** (ORM): reads the whole solution, ``[mean_j x_j, z]``, trained on the final-answer labels of which a
  fraction ``η`` is flipped (noisy outcome labels; Lightman et al. note outcome supervision also rewards right answers
  reached by wrong reasoning — label noise from the step-level point of view);
- **PRM**: reads one step, ``x_j``, trained on clean step labels up to the first mistake (PRM800K-style: steps before
  j* correct, j* wrong, later steps unlabeled); a solution's score is the ``min`` over its steps of σ(w·x_j + b)
  (:func:`rewardlab.rewards.prm.aggregate_steps`, Math-Shepherd's aggregation).

Best-of-n: ``n_test`` fresh problems with ``bon_n`` candidates each; a verifier picks its top-scored candidate and
accuracy is the fraction of correct picks (:func:`rewardlab.evaluate.processbench.best_of_n_accuracy`, tie-aware).
Swept over outcome-label noise ``noise_levels`` in a world with visible mistakes and one with silent ones.

Expected: with noisy outcome labels the PRM is the better verifier (its step labels are clean and it sees each
mistake undiluted by the other steps); without noise the gap shrinks (the ORM also reads the answer); with silent
mistakes the PRM is blind and the ORM, which reads the answer, wins even with noisy labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rewardlab.evaluate.processbench import best_of_n_accuracy
from rewardlab.lab.common import Advance, ExperimentResult, _noop
from rewardlab.lab.verdicts import Claim, check_sign, fmt

PAPER = "Lightman et al. 2023; Uesato et al. 2022"


@dataclass(frozen=True)
class StepWorldConfig:
    steps: int = 6
    dim: int = 8
    error_rate: float = 0.5            # P(a solution has a mistake)
    visibility: float = 2.25           # v: a mistake's signal in its own step (claims hold in 60/60 seeds, 0-59)
    answer_signal: float = 1.0         # a: a mistake's signal in the final answer
    label_noise: float = 0.3           # η: the main level of flipped outcome labels


@dataclass(frozen=True)
class StepwiseConfig:
    world: StepWorldConfig = field(default_factory=StepWorldConfig)
    n_train: int = 200                 # solutions both verifiers learn from
    n_test: int = 400                  # best-of-n problems
    bon_n: int = 8                     # candidates per problem
    l2: float = 1e-2
    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)

    def levels(self) -> list[float]:
        return sorted(set(self.noise_levels) | {0.0, self.world.label_noise})

    def units(self, n_seeds: int) -> int:
        return n_seeds


@dataclass
class Solutions:
    """``steps [N, L, d]``, ``answer [N, d]``, ``first_error [N]`` (−1: none), ``correct [N]``."""

    steps: np.ndarray
    answer: np.ndarray
    first_error: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return self.first_error < 0


def directions(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The world's unit vectors ``u`` (step mistakes) and ``u'`` (wrong answers)."""
    u, u2 = rng.standard_normal((2, dim))
    return u / np.linalg.norm(u), u2 / np.linalg.norm(u2)


def sample_solutions(w: StepWorldConfig, n: int, dirs: tuple[np.ndarray, np.ndarray], visibility: float,
                     rng: np.random.Generator) -> Solutions:
    """``n`` solutions of the world (module docstring), with step visibility ``visibility``."""
    u, u2 = dirs
    has_error = rng.random(n) < w.error_rate
    first = np.where(has_error, rng.integers(0, w.steps, n), -1)
    steps = rng.standard_normal((n, w.steps, w.dim))
    rows = np.flatnonzero(has_error)
    steps[rows, first[rows]] += visibility * u
    answer = rng.standard_normal((n, w.dim)) + w.answer_signal * has_error[:, None] * u2
    return Solutions(steps, answer, first)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 25) -> np.ndarray:
    """Weights ``[d + 1]`` (bias last) of L2-regularized logistic regression by Newton's method (IRLS):
    minimizes ``mean_i BCE(σ(w·x_i + b), y_i) + (l2/2)·‖w‖²`` (the bias is not penalized)."""
    X = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-X @ beta))
        grad = X.T @ (p - y) / len(y) + reg * beta
        hess = (X * (p * (1 - p))[:, None]).T @ X / len(y) + np.diag(reg) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def orm_inputs(s: Solutions) -> np.ndarray:
    return np.hstack([s.steps.mean(1), s.answer])


def prm_examples(s: Solutions) -> tuple[np.ndarray, np.ndarray]:
    """Step features and labels up to the first mistake: 1 before it, 0 at it; later steps are not labeled."""
    L = s.steps.shape[1]
    last = np.where(s.first_error < 0, L - 1, s.first_error)
    keep = np.arange(L)[None, :] <= last[:, None]
    labels = (np.arange(L)[None, :] < np.where(s.first_error < 0, L, s.first_error)[:, None]).astype(float)
    return s.steps[keep], labels[keep]


def _logit(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return x @ beta[:-1] + beta[-1]


def prm_scores(s: Solutions, beta: np.ndarray) -> np.ndarray:
    """``min_j σ(w·x_j + b)`` per solution (the ``min`` of :func:`rewardlab.rewards.prm.aggregate_steps`)."""
    return (1.0 / (1.0 + np.exp(-_logit(s.steps, beta)))).min(1)


def bon_accuracy(scores: np.ndarray, correct: np.ndarray, n: int) -> float:
    groups = scores.reshape(-1, n)
    flags = correct.reshape(-1, n)
    return float(best_of_n_accuracy(groups.tolist(), flags.tolist()))


def run_world(cfg: StepwiseConfig, visibility: float, rng: np.random.Generator) -> dict:
    """One world: train sets, outcome labels at every noise level (the same flips' uniforms), BoN of both."""
    w = cfg.world
    dirs = directions(w.dim, rng)
    train = sample_solutions(w, cfg.n_train, dirs, visibility, rng)
    test = sample_solutions(w, cfg.n_test * cfg.bon_n, dirs, visibility, rng)
    flips = rng.random(cfg.n_train)
    x_prm, y_prm = prm_examples(train)
    prm = fit_logistic(x_prm, y_prm, cfg.l2)
    acc_prm = bon_accuracy(prm_scores(test, prm), test.correct, cfg.bon_n)
    acc_orm = {}
    for eta in cfg.levels():
        y = np.where(flips < eta, ~train.correct, train.correct).astype(float)
        orm = fit_logistic(orm_inputs(train), y, cfg.l2)
        acc_orm[eta] = bon_accuracy(_logit(orm_inputs(test), orm), test.correct, cfg.bon_n)
    groups = test.correct.reshape(-1, cfg.bon_n)
    return {"prm": acc_prm, "orm": acc_orm, "oracle": float(groups.any(1).mean()), "random": float(groups.mean())}


def run_seed(cfg: StepwiseConfig, seed: int) -> dict:
    rng = np.random.default_rng([seed, 16])
    return {"visible": run_world(cfg, cfg.world.visibility, rng), "silent": run_world(cfg, 0.0, rng)}


def run(cfg: StepwiseConfig, seeds: list[int], advance: Advance = _noop) -> ExperimentResult:
    per_seed = []
    for s in seeds:
        per_seed.append(run_seed(cfg, s))
        advance(1)
    return summarize(cfg, per_seed)


def summarize(cfg: StepwiseConfig, per_seed: list[dict]) -> ExperimentResult:
    """Claims from per-seed results ``{"visible"|"silent": {"prm", "orm": {η: acc}, "oracle", "random"}}``."""
    eta = cfg.world.label_noise
    levels = cfg.levels()
    vis = [r["visible"] for r in per_seed]
    sil = [r["silent"] for r in per_seed]
    gap_noisy = [r["prm"] - r["orm"][eta] for r in vis]
    gap_clean = [r["prm"] - r["orm"][0.0] for r in vis]
    growth = [a - b for a, b in zip(gap_noisy, gap_clean)]
    silent_gap = [r["orm"][eta] - r["prm"] for r in sil]
    n, pct = cfg.bon_n, f"{eta:.0%}"
    claims = [
        Claim("stepwise-prm-noisy", "stepwise", PAPER,
              f"With {pct} of the final-answer labels flipped, a PRM (min over steps) is a better best-of-{n} "
              "verifier than an outcome RM trained on the same solutions",
              "process supervision > outcome supervision for selecting correct solutions",
              f"per seed, best-of-{n} accuracy(PRM) − accuracy(ORM), mistakes visible in their step, outcome "
              f"label noise {pct}; consistently > 0 over seeds",
              f"PRM {fmt([r['prm'] for r in vis])}, ORM {fmt([r['orm'][eta] for r in vis])}; "
              f"PRM − ORM {fmt(gap_noisy, 3)}",
              check_sign(gap_noisy), {"gap": gap_noisy},
              diagnosis=_diagnosis(gap_noisy, "the PRM")),
        Claim("stepwise-noise-drives-gap", "stepwise", PAPER,
              f"The PRM's advantage over the outcome RM is larger with {pct} noisy outcome labels than with clean "
              "ones (the outcome RM mainly suffers from the noise)",
              "outcome supervision degrades with label noise, process supervision does not",
              f"per seed, (PRM − ORM at {pct} noise) − (PRM − ORM at 0% noise); consistently > 0 over seeds",
              f"PRM − ORM: clean {fmt(gap_clean, 3)}, noisy {fmt(gap_noisy, 3)}; difference {fmt(growth, 3)}",
              check_sign(growth), {"gap_clean": gap_clean, "gap_noisy": gap_noisy},
              diagnosis=_diagnosis(growth, "the noise")),
        Claim("stepwise-silent-errors", "stepwise", PAPER,
              f"Where mistakes are not visible in the step they occur in (only the final answer shows them), the "
              f"outcome RM beats the PRM even with {pct} of its labels flipped",
              "a PRM can only verify what its step inputs reveal",
              f"per seed, best-of-{n} accuracy(ORM) − accuracy(PRM) with silent mistakes (v = 0), outcome label "
              f"noise {pct}; consistently > 0 over seeds",
              f"ORM {fmt([r['orm'][eta] for r in sil])}, PRM {fmt([r['prm'] for r in sil])} (random "
              f"{fmt([r['random'] for r in sil])}); ORM − PRM {fmt(silent_gap, 3)}",
              check_sign(silent_gap), {"gap": silent_gap},
              diagnosis=_diagnosis(silent_gap, "the ORM")),
    ]
    data = {"levels": levels, "label_noise": eta, "bon_n": n, "steps": cfg.world.steps,
            "visibility": cfg.world.visibility,
            "visible": {"prm": [r["prm"] for r in vis], "orm": [[r["orm"][e] for e in levels] for r in vis],
                        "oracle": [r["oracle"] for r in vis], "random": [r["random"] for r in vis]},
            "silent": {"prm": [r["prm"] for r in sil], "orm": [[r["orm"][e] for e in levels] for r in sil],
                       "oracle": [r["oracle"] for r in sil], "random": [r["random"] for r in sil]}}
    lines = [f"stepwise: best-of-{n} accuracy over {len(per_seed)} seeds (visible mistakes v={cfg.world.visibility:g})"]
    for e in levels:
        lines.append(f"  η={e:.0%}: ORM {fmt([r['orm'][e] for r in vis], 3)}  PRM {fmt([r['prm'] for r in vis], 3)}"
                     f"  | silent: ORM {fmt([r['orm'][e] for r in sil], 3)}  PRM {fmt([r['prm'] for r in sil], 3)}")
    return ExperimentResult("stepwise", "Process vs outcome reward models as best-of-n verifiers", claims, data, lines)


def _diagnosis(values: list[float], who: str) -> str:
    v = np.asarray(values, dtype=float)
    if not v.size:
        return "no seeds"
    return (f"{who} came out ahead in {int((v > 0).sum())}/{v.size} seeds, behind in {int((v < 0).sum())}, "
            f"tied in {int((v == 0).sum())} (largest gaps {v.min():+.3f} … {v.max():+.3f})")
