"""Per-attribute metrics of `rewardlab eval` on rated rows: the metric functions against scipy.stats and numpy, and
end to end with a tiny ArmoRM trained here: metrics.json against scipy applied to the attribute scores read back
through a plain k-output ModelReward of the directory, the gate's pairwise accuracy against its own scores."""

import json

import numpy as np
import pytest
from scipy import stats

from rewardlab.data.records import RatedRow
from rewardlab.errors import UserError
from rewardlab.evaluate.attributes import attribute_metrics, regression_metrics
from rewardlab.rewards.model import ModelReward
from rewardlab.rewards.multiobjective import ArmoReward
from rewardlab.train.config import ArmoConfig
from rewardlab.train.multiobjective import train_armo
from tests.rewards.test_multiobjective import synthetic


def test_regression_metrics_match_scipy_and_numpy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 40).astype(float)  # HelpSteer2-like 0..4 ratings: many ties
    pred = 0.6 * y + rng.normal(0, 1, 40)
    pred[:5] = pred[5]  # ties on the prediction side too
    got = regression_metrics(pred, y)
    assert got["n"] == 40
    assert got["mse"] == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-12)
    assert got["pearson"] == pytest.approx(stats.pearsonr(pred, y).statistic, rel=1e-9)
    assert got["spearman"] == pytest.approx(stats.spearmanr(pred, y).statistic, rel=1e-9)
    assert got["mean_pred"] == pytest.approx(pred.mean()) and got["mean_rating"] == pytest.approx(y.mean())
    const = regression_metrics(np.ones(4), np.arange(4.0))
    assert np.isnan(const["pearson"]) and np.isnan(const["spearman"])
    assert const["mse"] == pytest.approx(6 / 4)  # squared errors 1, 0, 1, 4


def test_attribute_metrics_use_the_rows_rated_on_each_attribute():
    rows = [RatedRow("p", "a", {"help": 1.0, "len": 2.0}), RatedRow("p", "b", {"help": 3.0}),
            RatedRow("p", "c", {"help": 2.0, "len": 5.0, "style": 1.0}), RatedRow("p", "d", {"len": 1.0})]
    pred = np.array([[1.5, 2.0, 9.0], [2.0, 0.0, 9.0], [2.5, 4.0, 9.0], [0.0, 2.0, 9.0]])  # help, len, extra
    out = attribute_metrics(pred, ["help", "len", "extra"], rows)
    # by hand: help on rows 0-2: errors 0.5, -1, 0.5 -> MSE 0.5; len on rows 0, 2, 3: errors 0, -1, 1 -> MSE 2/3
    assert out["attributes"]["help"]["n"] == 3 and out["attributes"]["help"]["mse"] == pytest.approx(0.5)
    assert out["attributes"]["len"]["n"] == 3 and out["attributes"]["len"]["mse"] == pytest.approx(2 / 3)
    assert out["attributes"]["help"]["pearson"] == pytest.approx(stats.pearsonr([1.5, 2, 2.5], [1, 3, 2]).statistic)
    assert out["attributes"]["len"]["spearman"] == pytest.approx(stats.spearmanr([2, 4, 2], [2, 5, 1]).statistic)
    assert out["not_in_model"] == ["style"] and out["not_rated"] == ["extra"]
    assert out["mean_mse"] == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(UserError, match="none in common"):
        attribute_metrics(pred[:, 2:], ["extra"], rows)


@pytest.fixture(scope="module")
def armo_world(tmp_path_factory):
    d = tmp_path_factory.mktemp("attr-eval")
    rated, pairs = synthetic(60, 40, seed=3)
    train_armo(rated, pairs, ArmoConfig(output=str(d / "armo"), verbosity="verbosity", ridge=0.1, epochs=20,
                                        max_length=64))
    held_rated, held_pairs = synthetic(30, 24, seed=4)
    (d / "rated.jsonl").write_text("".join(json.dumps({"prompt": r.prompt, "response": r.response,
                                                       "attributes": r.attributes}) + "\n" for r in held_rated))
    (d / "pairs.jsonl").write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen,
                                                       "rejected": p.rejected}) + "\n" for p in held_pairs))
    return d, held_rated, held_pairs


def test_cli_eval_on_rated_rows_and_pairs(cli, armo_world):
    d, rated, pairs = armo_world
    code, out, err = cli("eval", d / "armo", "--data", d / "pairs.jsonl", "--rated", d / "rated.jsonl",
                         "-o", d / "eval", "--device", "cpu")
    assert code == 0, err
    m = json.loads((d / "eval" / "metrics.json").read_text())["models"][str(d / "armo")]
    # the reference: the raw attribute heads through a plain k-output ModelReward of the directory, then scipy
    heads = ModelReward.from_pretrained(d / "armo", device="cpu")
    raw = heads.score([r.prompt for r in rated], [r.response for r in rated]).numpy()
    for j, name in enumerate(["helpfulness", "verbosity"]):
        y = np.array([r.attributes[name] for r in rated])
        got = m["attributes"]["attributes"][name]
        assert got["n"] == 30
        assert got["mse"] == pytest.approx(float(np.mean((raw[:, j] - y) ** 2)), rel=1e-4)
        assert got["pearson"] == pytest.approx(stats.pearsonr(raw[:, j], y).statistic, abs=1e-4)
        assert got["spearman"] == pytest.approx(stats.spearmanr(raw[:, j], y).statistic, abs=1e-4)
        assert f"  {name}: n=30 mse=" in out
    # verbosity = the word count, which the random tiny backbone's features carry in part: 0.38 held out (measured)
    assert m["attributes"]["attributes"]["verbosity"]["pearson"] > 0.2
    # the gate's preference score on the pairs: accuracy from ArmoReward.score, chosen vs rejected
    gate = ArmoReward.from_pretrained(d / "armo", device="cpu")
    sc = gate.score([p.prompt for p in pairs], [p.chosen for p in pairs])
    sr = gate.score([p.prompt for p in pairs], [p.rejected for p in pairs])
    assert m["pairs"]["accuracy"] == pytest.approx(float((sc > sr).float().mean()))
    summary = m["summary"]
    assert summary["attribute_pearson"] == pytest.approx(np.mean([m["attributes"]["attributes"][a]["pearson"]
                                                                  for a in ("helpfulness", "verbosity")]))
    assert "Attributes (30 rated rows)" in (d / "eval" / "report.html").read_text()


def test_cli_eval_rated_data_alone_and_refusals(cli, armo_world, tmp_path, monkeypatch):
    d, rated, _ = armo_world
    code, out, err = cli("eval", d / "armo", "--data", d / "rated.jsonl", "-o", tmp_path / "e1", "--device", "cpu")
    assert code == 0, err
    m = json.loads((tmp_path / "e1" / "metrics.json").read_text())["models"][str(d / "armo")]
    assert set(m["attributes"]["attributes"]) == {"helpfulness", "verbosity"} and "pairs" not in m
    # dpa: over the same heads gives the same attribute metrics
    code, _, err = cli("eval", f"dpa:{d / 'armo'}:1,0", "--data", d / "rated.jsonl", "-o", tmp_path / "e2",
                       "--device", "cpu")
    assert code == 0, err
    m2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())["models"][f"dpa:{d / 'armo'}:1,0"]
    assert m2["attributes"]["attributes"]["helpfulness"]["mse"] == pytest.approx(
        m["attributes"]["attributes"]["helpfulness"]["mse"], rel=1e-5)
    # a scalar reward has no attributes; rated --data beside --rated is refused
    monkeypatch.chdir(tmp_path)
    (tmp_path / "attrmod.py").write_text("def f(prompt, response):\n    return float(len(response))\n")
    code, _, err = cli("eval", "python:attrmod:f", "--data", d / "rated.jsonl", "-o", tmp_path / "e3")
    assert code == 2 and "named per-attribute outputs" in err
    code, _, err = cli("eval", d / "armo", "--data", d / "rated.jsonl", "--rated", d / "rated.jsonl",
                       "-o", tmp_path / "e4")
    assert code == 2 and "holds rated rows already" in err
