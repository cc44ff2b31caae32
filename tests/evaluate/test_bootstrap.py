"""Bootstrap CIs for accuracy, RV and on-policy accuracy, and bolding only separated winners in the comparison."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

import rewardlab.evaluate.report as report
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate import metrics as M
from rewardlab.evaluate.plots import PlotError
from rewardlab.evaluate.report import comparison_table, write_report
from rewardlab.evaluate.suite import EvalResult, evaluate_reward, json_ready, paired_difference_ci, replicates
from rewardlab.rewards.base import FunctionReward


def _model(correct: set[int], n: int, name: str, data: str | None = None) -> EvalResult:
    """A reward that ranks pair i right exactly when i is in ``correct`` (chosen 'c{i}' vs rejected 'r{i}')."""
    pairs = [PreferencePair("p", f"c{i}", f"r{i}") for i in range(n)]
    fn = FunctionReward(lambda p, r: (1.0 if int(r[1:]) in correct else 0.0) if r[0] == "c" else 0.5, name=name)
    res = evaluate_reward(fn, pairs, name)
    res.metrics["data"] = data
    return res


def _two(acc_a: int, acc_b: int, n: int = 100, seed: int = 0) -> tuple[EvalResult, EvalResult]:
    rng = np.random.default_rng(seed)
    return (_model(set(rng.choice(n, acc_a, replace=False).tolist()), n, "A"),
            _model(set(rng.choice(n, acc_b, replace=False).tolist()), n, "B"))


def test_accuracy_ci_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(1)
    correct = (rng.random(200) < 0.7).astype(float)
    ours = M.percentile_ci(M.resampled_ratio(correct, np.ones(200), M.bootstrap_indices(200, 20000, 0)))
    ref = stats.bootstrap((correct,), np.mean, n_resamples=20000, method="percentile", random_state=0)
    ci = ref.confidence_interval
    assert ours == pytest.approx((ci.low, ci.high), abs=0.01)
    assert ours[0] < correct.mean() < ours[1] and ours[1] - ours[0] == pytest.approx(
        2 * 1.96 * np.sqrt(0.7 * 0.3 / 200), abs=0.02)  # the normal approximation, as a third reference


def test_tiny_cases_by_hand():
    # two pairs, one right: the resampled accuracy is 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4 -> 95% CI [0, 1]
    rep = M.resampled_ratio(np.array([1.0, 0.0]), np.ones(2), M.bootstrap_indices(2, 4000, 0))
    assert {0.0, 0.5, 1.0} == set(rep.tolist()) and np.mean(rep == 0.5) == pytest.approx(0.5, abs=0.03)
    assert M.percentile_ci(rep) == (0.0, 1.0)
    # all right: every resample is 1, the CI is the point
    assert M.percentile_ci(M.resampled_ratio(np.ones(5), np.ones(5), M.bootstrap_indices(5, 100, 0))) == (1.0, 1.0)
    # RV of prompts p0 = [0, 2], p1 = [4, 6]: global mean 3, variance 5, within variances 1 -> RV = 1/5.
    # Resampling p0 twice re-standardizes on [0, 2, 0, 2] (variance 1) -> RV = 1; likewise p1 twice.
    r = np.array([0.0, 2, 4, 6])
    group = [0, 0, 1, 1]
    z = M.standardize_global(r)
    mean, var = np.array([z[:2].mean(), z[2:].mean()]), M.per_prompt_reward_variance(r, group)
    rv = M.resampled_reward_variance(mean, var, np.array([2.0, 2.0]), np.array([[0, 1], [0, 0], [1, 1]]))
    assert rv == pytest.approx([0.2, 1.0, 1.0]) and rv[0] == pytest.approx(M.reward_variance(r, group))


def test_prompt_resamples_equal_the_metrics_on_the_resampled_data():
    """Each replicate equals RV / on-policy accuracy recomputed from scratch on the resampled prompts' items."""
    rng = np.random.default_rng(2)
    P, m = 12, 5
    r, gold = rng.normal(size=(P, m)), rng.integers(0, 3, size=(P, m)).astype(float)
    res = evaluate_reward(_table(r), None, "x", rollout=_rollout(r), gold=_table(gold))
    rv_rep, acc_rep = replicates(res.metrics, "reward_variance"), replicates(res.metrics, "on_policy_accuracy")
    idx = M.bootstrap_indices(P, 2000, 0)  # the resamples replicates() uses (n_boot = 2000, seed = 0)
    for b in range(5):
        rs, gs = r[idx[b]], gold[idx[b]]
        assert rv_rep[b] == pytest.approx(M.reward_variance(rs))
        assert acc_rep[b] == pytest.approx(M.on_policy_accuracy(rs, gs))
    assert res.metrics["summary"]["reward_variance_ci"][0] < res.metrics["summary"]["reward_variance"]


def _rollout(r: np.ndarray) -> SimpleNamespace:
    """m responses per prompt, named by their flat index "k" so that :func:`_table` can look up their scores."""
    P, m = r.shape
    return SimpleNamespace(prompts=[f"p{i}" for i in range(P) for _ in range(m)],
                           responses=[str(k) for k in range(P * m)], group=[i for i in range(P) for _ in range(m)])


def _table(scores: np.ndarray) -> FunctionReward:
    return FunctionReward(lambda p, y: float(scores.flat[int(y)]))


def test_clearly_different_accuracies_are_bold():
    a, b = _two(90, 50)
    lo, hi = paired_difference_ci(a.metrics, b.metrics, "accuracy")
    assert 0 < lo < 0.4 < hi
    table = comparison_table([b, a])
    assert "<b>0.900" in table and "<b>0.500" not in table and "separated, bold" in table
    # still paired after a round trip through metrics.json (the per-pair results are stored)
    loaded = EvalResult("A (disk)", json.loads(json.dumps(json_ready(a.metrics))))
    assert "<b>0.900" in comparison_table([b, loaded])


def test_close_accuracies_at_n_100_are_not_bold():
    a, b = _two(52, 55)
    lo, hi = paired_difference_ci(b.metrics, a.metrics, "accuracy")
    assert lo < 0 < hi
    table = comparison_table([a, b])
    assert "<b>" not in table and "not separated, not bold" in table
    assert "0.550 <small>[" in table and "0.520 <small>[" in table


def test_no_pairing_across_data_files_or_without_per_unit_data():
    a, b = _two(90, 50)
    b.metrics["data"] = "other.jsonl"
    assert paired_difference_ci(a.metrics, b.metrics, "accuracy") is None
    assert "<b>" not in comparison_table([a, b]) and "no paired CI" in comparison_table([a, b])
    old = json.loads(json.dumps(json_ready(a.metrics)))
    del old["pairs"]["correct"]  # a metrics.json written before the per-pair results were stored
    assert replicates(old, "accuracy") is None


def test_rv_winner_bold_only_when_separated():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(40, 6))
    high = evaluate_reward(_table(base), None, "high", rollout=_rollout(base))
    shrunk = base.mean(1, keepdims=True) + 0.3 * (base - base.mean(1, keepdims=True))  # within-prompt spread × 0.3
    low = evaluate_reward(_table(shrunk), None, "low", rollout=_rollout(base))
    assert "<b>" + f"{high.metrics['summary']['reward_variance']:.3f}" in comparison_table([low, high])
    twin = evaluate_reward(_table(2 * base + 1), None, "affine", rollout=_rollout(base))
    assert "<b>" not in comparison_table([high, twin])  # same RV (affine invariance): never separated


def test_metrics_json_is_written_before_a_plot_fails(tmp_path, monkeypatch):
    a, b = _two(90, 50)

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(report, "plot_subsets", broken)
    with pytest.raises(PlotError, match=r"subsets.png failed \(RuntimeError: no display\); the results are saved "
                                        r"in .*metrics.json"):
        write_report(tmp_path, [a, b])
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["models"]["A"]["summary"]["accuracy"] == 0.9 and not (tmp_path / "report.html").exists()


def test_rv_of_a_reward_misaligned_on_the_policy_is_never_bold():
    """The report once bolded a below-chance RM's variance as the best teacher metric: RV bolds only among rewards
    whose on-policy accuracy CI is above 0.5."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(40, 6))
    shrunk = base.mean(1, keepdims=True) + 0.3 * (base - base.mean(1, keepdims=True))
    gold = _table(base)
    anti = evaluate_reward(_table(-base), None, "anti", rollout=_rollout(base), gold=gold)
    low = evaluate_reward(_table(shrunk), None, "low", rollout=_rollout(base), gold=gold)
    assert anti.metrics["summary"]["reward_variance"] > 2 * low.metrics["summary"]["reward_variance"]
    table = comparison_table([low, anti])
    assert f"<b>{anti.metrics['summary']['reward_variance']:.3f}" not in table
    assert "anti: on-policy accuracy not above 0.5 (CI)" in table
    high = evaluate_reward(_table(base), None, "high", rollout=_rollout(base), gold=gold)
    assert f"<b>{high.metrics['summary']['reward_variance']:.3f}" in comparison_table([low, anti, high])
