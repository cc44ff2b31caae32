"""Teacher monitor metrics on small cases computed by hand, and the TRL wrapper/callback plumbing."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from rewardlab.integrations.monitor import TeacherMonitor, group_metrics


def test_two_groups_by_hand():
    """r = [0, 2 | 1, 1]: global mean 1, population std sqrt(0.5), r̃ = [-√2, √2, 0, 0]; group variances 2 and 0,
    RV = 1; group stds √2 and 0 -> one of two groups flat; lengths = r + 1 -> Pearson +1 (reversed: -1)."""
    m = group_metrics(["a", "a", "b", "b"], [0.0, 2.0, 1.0, 1.0], [1, 3, 2, 2])
    assert m["teacher/reward_variance"] == pytest.approx(1.0)
    assert m["teacher/frac_flat_groups"] == 0.5 and m["teacher/num_groups"] == 2.0
    assert m["teacher/reward_length_pearson"] == pytest.approx(1.0)
    assert group_metrics(["a", "a", "b", "b"], [0.0, 2.0, 1.0, 1.0], [3, 1, 2, 2])[
        "teacher/reward_length_pearson"] == pytest.approx(-1.0)
    # the same rewards, scaled and shifted: RV and flatness are scale-free (global standardization)
    scaled = group_metrics(["a", "a", "b", "b"], [10.0, 30.0, 20.0, 20.0], [1, 3, 2, 2])
    assert scaled["teacher/reward_variance"] == pytest.approx(1.0) and scaled["teacher/frac_flat_groups"] == 0.5


def test_against_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    uids = np.repeat([f"u{i}" for i in range(6)], 4)
    r = rng.normal(size=24) * np.repeat([1.0, 0.01, 2.0, 0.0, 0.5, 0.02], 4) + np.repeat(rng.normal(size=6), 4)
    lengths = rng.integers(1, 50, size=24)
    z = (r - r.mean()) / r.std()
    group_var = z.reshape(6, 4).var(axis=1)
    m = group_metrics(list(uids), r.tolist(), lengths.tolist(), eps=0.05)
    assert m["teacher/reward_variance"] == pytest.approx(group_var.mean())
    assert m["teacher/frac_flat_groups"] == pytest.approx(np.mean(np.sqrt(group_var) < 0.05))
    assert m["teacher/reward_length_pearson"] == pytest.approx(np.corrcoef(r, lengths)[0, 1])


def test_eps_is_on_the_standardized_scale():
    """Group b's std of r̃ is s; eps just above s marks it flat, just below does not."""
    r = [0.0, 10.0, 5.0, 5.2]
    z = (np.array(r) - np.mean(r)) / np.std(r)
    s = np.std(z[2:])
    uids = ["a", "a", "b", "b"]
    assert group_metrics(uids, r, [1, 1, 1, 2], eps=s * 1.01)["teacher/frac_flat_groups"] == 0.5
    assert group_metrics(uids, r, [1, 1, 1, 2], eps=s * 0.99)["teacher/frac_flat_groups"] == 0.0


def test_a_flat_teacher_and_what_is_left_out():
    flat = group_metrics(["a", "a", "b", "b"], [3.0] * 4, [1, 2, 3, 4])
    assert flat["teacher/reward_variance"] == 0.0 and flat["teacher/frac_flat_groups"] == 1.0
    assert math.isnan(flat["teacher/reward_length_pearson"])  # constant reward
    # b is a singleton, c is one after its NaN is dropped: only a (r̃ = ±1) remains
    m = group_metrics(["a", "a", "b", "c", "c"], [0.0, 2.0, 5.0, None, 1.0], [1, 2, 3, 4, 5])
    assert m["teacher/num_groups"] == 1.0 and m["teacher/reward_variance"] == pytest.approx(1.0)
    empty = group_metrics([], [], [])
    assert empty["teacher/num_groups"] == 0.0 and math.isnan(empty["teacher/reward_variance"])
    with pytest.raises(ValueError, match="2 uids, 1 scores"):
        group_metrics(["a", "a"], [1.0], [1, 2])


def _reward_func(prompts, completions, **kwargs):
    return [float(len(c)) for c in completions]


def test_wrap_logs_through_trl_log_metric_and_groups_by_prompt():
    mon = TeacherMonitor()
    wrapped = mon.wrap(_reward_func)
    assert wrapped.__name__ == "_reward_func"
    logged = {}
    conv = [{"role": "user", "content": "hi"}]
    prompts = [conv, conv, "plain", "plain"]
    completions = ["aa", "aaaa", "a", "a"]
    # completion_ids give lengths in tokens: reversed relative to the characters here
    out = wrapped(prompts=prompts, completions=completions, completion_ids=[[1] * 4, [1] * 2, [1] * 3, [1] * 3],
                  trainer_state=SimpleNamespace(global_step=7), log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == [2.0, 4.0, 1.0, 1.0]
    expected = group_metrics(["c", "c", "p", "p"], out, [4, 2, 3, 3])
    assert logged == pytest.approx(expected) and logged["teacher/frac_flat_groups"] == 0.5
    assert logged["teacher/reward_length_pearson"] < 0
    assert mon.history == [{"step": 7, "length_unit": "tokens", **expected}]
    # delivered through log_metric: on_log adds nothing
    logs = {"loss": 1.0}
    mon.on_log(None, SimpleNamespace(log_history=[dict(logs)]), None, logs=logs)
    assert logs == {"loss": 1.0}


def test_on_log_adds_metrics_without_the_hook():
    mon = TeacherMonitor()
    wrapped = mon.wrap(_reward_func)
    wrapped(prompts=["p", "p", "q", "q"], completions=["a", "aaa", "bb", "bb"])
    wrapped(prompts=["p", "p", "q", "q"], completions=["a", "aaa", "b", "bbb"])
    assert [h["length_unit"] for h in mon.history] == ["chars", "chars"]
    state = SimpleNamespace(log_history=[{"loss": 1.0, "step": 2}])
    logs = {"loss": 1.0}
    mon.on_log(None, state, None, logs=logs)
    assert logs["teacher/frac_flat_groups"] == pytest.approx((0.5 + 0.0) / 2)
    assert logs["teacher/reward_variance"] == pytest.approx(np.mean([h["teacher/reward_variance"]
                                                                      for h in mon.history]))
    assert state.log_history[-1]["teacher/frac_flat_groups"] == logs["teacher/frac_flat_groups"]
    logs2 = {"loss": 0.5}
    mon.on_log(None, state, None, logs=logs2)  # nothing new since the last log
    assert logs2 == {"loss": 0.5}
