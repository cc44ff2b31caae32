"""Suite wiring (pairs, k-way, ensembles) and report writing, with FunctionRewards whose scores are known."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import KWayRow, PreferencePair
from rewardlab.evaluate import calibration as C
from rewardlab.evaluate import metrics as M
from rewardlab.evaluate.report import comparison_table, write_report
from rewardlab.evaluate.rewardbench import KWayScores, rb2_scores
from rewardlab.evaluate.suite import EvalResult, evaluate_reward, json_ready, pair_metrics, response_length
from rewardlab.rewards.base import FunctionReward

LEN = FunctionReward(lambda p, r: float(len(r) if isinstance(r, str) else response_length(r)), name="length")


def _pairs():
    return [PreferencePair("p", "aaaa", "bb", subset="s1"), PreferencePair("p", "a", "bbb", subset="s1"),
            PreferencePair("q", "aaa", "bbb", subset="s2"),
            PreferencePair("q", [{"role": "assistant", "content": "xxxxx"}], [{"role": "assistant", "content": "y"}],
                           subset="s2")]


def test_evaluate_pairs_with_known_scores():
    res = evaluate_reward(LEN, _pairs(), "length", sections={"S": ["s1", "s2"]}, weights={})
    p = res.metrics["pairs"]
    c, r = np.array([4, 1, 3, 5.0]), np.array([2, 3, 3, 1.0])
    assert p["accuracy"] == M.pairwise_accuracy(c, r) == 0.5 and p["tie_rate"] == 0.25
    assert p["subsets"]["s1"]["accuracy"] == 0.5 and p["subsets"]["s2"]["tie_rate"] == 0.5
    # weights={} -> observed counts (2 and 2) -> S = mean of the two subset accuracies
    assert p["sections"]["sections"]["S"] == 0.5
    assert p["length_bias"]["spearman"] == pytest.approx(1.0)  # reward is the length
    assert p["calibration"]["ece"] == pytest.approx(C.expected_calibration_error(C.preference_probs(c - r)))
    assert res.arrays["chosen"] == pytest.approx(c) and res.metrics["summary"]["accuracy"] == 0.5


def test_pair_metrics_ensemble_members_and_temperature():
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=(40, 3)) + 0.5, rng.normal(size=(40, 3))
    pairs = [PreferencePair("p", f"c{i}", f"r{i}") for i in range(40)]
    out = pair_metrics(c, r, pairs, val_fraction=0.5, seed=1)
    assert out["accuracy"] == M.pairwise_accuracy(c.mean(1), r.mean(1))
    assert out["ensemble"]["members"] == 3
    assert out["ensemble"]["mean_std"] == pytest.approx(M.ensemble_disagreement(c - r).mean())
    val = np.random.default_rng(1).permutation(40)[:20]
    d = c.mean(1) - r.mean(1)
    assert out["calibration"]["fitted"]["fitted_temperature"] == pytest.approx(C.fit_temperature(d[val]))


def test_evaluate_kway_matches_rb2_scores():
    rows = [KWayRow("p", ["aaaa"], ["a", "bb", "ccc"], "Focus", "0"),
            KWayRow("p", ["aa"], ["bb", "c", "d"], "Focus", "1"),
            KWayRow("p", ["aaa", "bbb"], ["c"], "Ties", "ref:0"), KWayRow("p", ["aaa", "bb"], ["c"], "Ties", "tied:0")]
    res = evaluate_reward(LEN, rows, "length")
    ref = rb2_scores([KWayScores([len(x) for x in row.chosen], [len(x) for x in row.rejected], row.subset, row.id)
                      for row in rows])
    assert res.metrics["kway"]["overall"] == pytest.approx(ref["overall"])
    assert res.metrics["kway"]["subsets"]["Focus"]["score"] == (1 + 0.5) / 2  # row 1: tie with "bb"
    assert "pairs" not in res.metrics and res.metrics["summary"]["rb2_overall"] == pytest.approx(ref["overall"])


def test_json_ready_strict():
    obj = json_ready({"a": math.nan, "b": np.float32(1.5), "c": np.arange(2), "d": [math.inf, 1]})
    assert obj == {"a": None, "b": 1.5, "c": [0, 1], "d": [None, 1]}
    json.dumps(obj, allow_nan=False)


def test_report_from_loaded_metrics_and_table(tmp_path):
    main = evaluate_reward(LEN, _pairs(), "length")
    loaded = EvalResult("old", json.loads(json.dumps(json_ready(main.metrics))))  # no arrays, as from disk
    paths = write_report(tmp_path, [main, loaded], {"data": "x"})
    assert {"reliability.png", "subsets.png", "reward_histograms.png", "metrics.json", "report.html"} <= set(paths)
    assert "rv_per_prompt.png" not in paths  # no teacher metrics
    json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    table = comparison_table([main, loaded])
    # the same model twice: paired difference exactly 0 -> nothing bold, the CI is shown and the test explained
    assert table.count("<tr>") == 3 and "<b>" not in table and "not separated" in table
    lo, hi = main.metrics["summary"]["accuracy_ci"]
    assert f"0.500 <small>[{lo:.3f}, {hi:.3f}]</small>" in table and lo <= 0.5 <= hi


def test_cli_sections_yaml_and_compare_dir(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": "p", "chosen": "a" * (i + 2), "rejected": "b" * (3 - i % 3),
                                        "subset": f"s{i % 2}"}) + "\n" for i in range(6)))
    (tmp_path / "sec.yaml").write_text("sections:\n  Both: [s0, s1]\nweights:\n  s0: 3\n  s1: 1\n")
    mod = tmp_path / "lenmod.py"
    mod.write_text("def length(prompt, response):\n    return float(len(response))\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        first = CliRunner().invoke(app, ["eval", "python:lenmod:length", "--data", str(data), "--sections",
                                         str(tmp_path / "sec.yaml"), "-o", str(tmp_path / "r1")])
        assert first.exit_code == 0, first.output
        second = CliRunner().invoke(app, ["eval", "python:lenmod:length", "--data", str(data), "--compare",
                                          str(tmp_path / "r1"), "-o", str(tmp_path / "r2")])
        assert second.exit_code == 0, second.output
    finally:
        sys.path.remove(str(tmp_path))
    m1 = json.loads((tmp_path / "r1" / "metrics.json").read_text())["models"]["python:lenmod:length"]
    subs = m1["pairs"]["subsets"]
    assert m1["pairs"]["sections"]["sections"]["Both"] == pytest.approx(
        (3 * subs["s0"]["accuracy"] + subs["s1"]["accuracy"]) / 4)
    doc2 = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert list(doc2["models"]) == ["python:lenmod:length", f"{tmp_path / 'r1'} (python:lenmod:length)"]


def test_evaluate_ensemble_reward_uses_members_and_its_aggregation():
    from rewardlab.rewards.ensemble import EnsembleReward

    count_a = FunctionReward(lambda p, r: float(r.count("a")), name="count_a")
    pairs = [PreferencePair("p", "aaaa", "bb"), PreferencePair("p", "ab", "bbbbb"), PreferencePair("q", "a", "aa"),
             PreferencePair("q", "bbba", "b")]
    ens = EnsembleReward([LEN, count_a], method="wco")
    res = evaluate_reward(ens, pairs, "ens")
    assert res.metrics["ensemble_standardized_on"] == "evaluation data"
    # independent: standardize each member over the 8 evaluation responses (population std), WCO = min
    items = [x for p in pairs for x in (p.chosen, p.rejected)]
    raw = np.array([[len(x), x.count("a")] for x in items], dtype=float)
    z = (raw - raw.mean(0)) / raw.std(0)
    agg = z.min(1)
    c, r = agg[0::2], agg[1::2]
    p = res.metrics["pairs"]
    assert p["accuracy"] == M.pairwise_accuracy(c, r)
    assert p["mean_margin"] == pytest.approx(float(np.mean(c - r)), abs=1e-6)
    dz = z[0::2] - z[1::2]
    assert p["ensemble"]["members"] == 2
    assert p["ensemble"]["mean_std"] == pytest.approx(float(dz.std(1).mean()), abs=1e-6)
    assert p["ensemble"]["error_rate"] == pytest.approx(float(np.mean(c - r <= 0)))  # errors of the WCO scalar


def test_temperature_at_bound_flagged_on_separable_split():
    pairs = [PreferencePair("p", f"c{i}", f"r{i}") for i in range(10)]
    sep = pair_metrics(np.arange(1.0, 11.0), np.zeros(10), pairs)  # every Δ > 0: no finite MLE
    f = sep["calibration"]["fitted"]
    assert f["at_bound"] and f["fitted_temperature"] < 0.0102
    assert f["temperature"] == 1.0 and not f["kept"] and f["test_ece_kept"] == f["test_ece_raw"]  # not used
    mixed = pair_metrics(np.array([2.0, 2, 2, -2] * 4), np.zeros(16), [pairs[0]] * 16, seed=3)
    assert not mixed["calibration"]["fitted"]["at_bound"]
