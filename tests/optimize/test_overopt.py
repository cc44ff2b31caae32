"""`rewardlab overopt` (optimize/overopt.py): the fitted-peak formulas against a numeric argmax, and the command on run
directories made here — metrics.jsonl / bon_table.csv curves generated from known α, β, which the fits must
recover — with the peak's movement, a fit outside Gao's form flagged, the figure and bad runs refused."""

import csv
import json
import math

import numpy as np
import pytest

from rewardlab.optimize.fits import GaoFit
from rewardlab.optimize.overopt import compare_runs, fitted_peak, movement


def gao(form, alpha, beta, d):
    d = np.asarray(d, dtype=np.float64)
    return d * (alpha - beta * d) if form == "bon" else d * (alpha - beta * np.log(d))


@pytest.mark.parametrize("form,alpha,beta", [("bon", 1.0, 0.5), ("bon", 0.3, 2.0), ("rl", 1.0, 0.5),
                                              ("rl", 0.2, 0.4), ("rl", 2.0, 0.9)])
def test_fitted_peak_is_the_numeric_argmax(form, alpha, beta):
    d_star, g_star = fitted_peak(GaoFit(form, alpha, beta, 1.0, 10, 10))
    grid = np.linspace(1e-6, 4 * d_star, 400_001)
    g = gao(form, alpha, beta, grid)
    i = int(np.argmax(g))
    assert d_star == pytest.approx(grid[i], abs=2 * (grid[1] - grid[0]))
    assert g_star == pytest.approx(g[i], rel=1e-9)


def test_no_peak_outside_gaos_form_or_without_a_fit():
    assert fitted_peak(GaoFit("rl", -0.1, 0.5, 1.0, 10, 10)) is None
    assert fitted_peak(GaoFit("bon", 1.0, -0.5, 1.0, 10, 10)) is None
    assert fitted_peak(GaoFit("rl", math.nan, math.nan, math.nan, 3, 3, reason="few")) is None
    assert movement([("a", 1.0), ("b", 2.0)]) == "rises" and movement([("a", 2.0), ("b", 1.0)]) == "falls"
    assert movement([("a", 1.0), ("b", 3.0), ("c", 2.0)]) == "not monotone" and movement([("a", 1.0)]).startswith("n/a")


D = [0.0, 0.3, 0.6, 1.0, 1.5, 2.0, 2.6, 3.2, 4.0]


def rl_run(path, alpha, beta, gold0=0.7):
    """metrics.jsonl as the RL loops write it: eval rows (absolute gold = gold0 + the curve) among train rows, one
    step evaluated twice (a resumed run: the last row counts), steps out of order in the file."""
    path.mkdir()
    gold = gold0 + np.where(np.asarray(D) > 0, gao("rl", alpha, beta, np.maximum(D, 1e-300)), 0.0)
    rows = [{"kind": "eval", "step": 10 * i, "sqrt_kl": d, "kl": d * d, "proxy_mean": 0.0, "gold_mean": float(g)}
            for i, (d, g) in enumerate(zip(D, gold))]
    rows.insert(3, {"kind": "train", "step": 15, "reward_mean": 1.0})
    rows.insert(2, dict(rows[2], gold_mean=-99.0))  # an earlier row of step 20, replaced by the one after it
    rows[1], rows[5] = rows[5], rows[1]  # steps 10 and 30 swapped
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "summary.json").write_text(json.dumps({"algorithm": "rloo", "args": {"kl_coef": alpha / 10}}))
    return path


def bon_run(path, alpha, beta):
    path.mkdir()
    ns = [1, 2, 4, 8, 16, 32, 64]
    d = [math.sqrt(math.log(n) - (n - 1) / n) for n in ns]
    with open(path / "bon_table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["n", "kl", "sqrt_kl", "proxy", "gold"])
        w.writeheader()
        for n, x, g in zip(ns, d, gao("bon", alpha, beta, d)):
            w.writerow({"n": n, "kl": x * x, "sqrt_kl": x, "proxy": 0.0, "gold": 0.25 + g})
    return path


def test_the_fits_recover_the_planted_curves_and_the_peak_moves(tmp_path):
    runs = [rl_run(tmp_path / "rm_l", 1.5, 0.5), rl_run(tmp_path / "rm_s", 1.0, 0.5),
            rl_run(tmp_path / "rm_m", 1.2, 0.5), bon_run(tmp_path / "bon", 0.8, 0.3)]
    out = compare_runs(runs, ["1e8", "1e6", "1e7", "5e6"], by="label", figure=tmp_path / "f.png")
    rows = {r["label"]: r for r in out["runs"]}
    assert [r["label"] for r in out["runs"]] == ["1e6", "5e6", "1e7", "1e8"]  # sorted by the labels as numbers
    for label, (form, a, b) in {"1e6": ("rl", 1.0, 0.5), "1e7": ("rl", 1.2, 0.5), "1e8": ("rl", 1.5, 0.5),
                                "5e6": ("bon", 0.8, 0.3)}.items():
        r = rows[label]
        assert r["form"] == form and r["r2"] == pytest.approx(1.0) and r["problem"] is None
        assert r["alpha"] == pytest.approx(a, rel=1e-9) and r["beta"] == pytest.approx(b, rel=1e-9)
    # by hand: RL d* = exp(1.0/0.5 − 1) = e, gold = β·d* = e/2; BoN d* = 0.8/(2·0.3), gold = 0.8²/(4·0.3)
    assert rows["1e6"]["d_peak"] == pytest.approx(math.e) and rows["1e6"]["gold_peak"] == pytest.approx(math.e / 2)
    assert rows["5e6"]["d_peak"] == pytest.approx(0.8 / 0.6) and rows["5e6"]["gold_peak"] == pytest.approx(0.64 / 1.2)
    assert rows["1e6"]["points"] == len(D)  # the duplicate step counted once
    assert not rows["1e6"]["peak_beyond_data"] and rows["1e8"]["peak_beyond_data"]  # e^2 = 7.39 > 4.0 measured
    # d*: 2.718 (1e6) -> 1.333 (5e6, the BoN run) -> 4.055 (1e7) -> 7.389 (1e8): not monotone with the BoN run in
    assert out["peak_d"]["direction"] == "not monotone"
    rl_only = compare_runs(runs[:3], ["1e8", "1e6", "1e7"], by="label")
    assert rl_only["peak_d"]["direction"] == "rises" and rl_only["peak_gold"]["direction"] == "rises"
    steps = rl_only["peak_d"]["steps"]
    assert [(s["from"], s["to"]) for s in steps] == [("1e6", "1e7"), ("1e7", "1e8")]
    assert steps[0]["change"] == pytest.approx(math.exp(1.4) - math.exp(1.0))
    by_key = compare_runs(runs[:3], by="args.kl_coef")  # a summary.json key: 0.15, 0.10, 0.12 -> s, m, l
    assert [r["label"] for r in by_key["runs"]] == ["rm_s", "rm_m", "rm_l"]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overopt_command(tmp_path, cli):
    a, b = rl_run(tmp_path / "a", 1.0, 0.5), rl_run(tmp_path / "b", 0.5, -0.2)  # b: gold keeps rising (β < 0)
    fig, js = tmp_path / "family.png", tmp_path / "family.json"
    code, out, err = cli("overopt", a, b, "-o", fig, "--json", js)
    assert code == 0, err
    flat = " ".join(out.split())
    assert "FLAG b: outside Gao's form: β ≤ 0" in flat and "fitted peak d*: n/a" in flat and "no peak: b" in flat
    result = json.loads(js.read_text())
    assert result["order"] == "as given" and result["runs"][0]["d_peak"] == pytest.approx(math.exp(1.0))
    assert result["runs"][1]["beta"] == pytest.approx(-0.2) and fig.exists()
    assert not list(tmp_path.glob(".*tmp*"))  # the figure was renamed into place


def test_overopt_refuses_runs_it_cannot_read(tmp_path, cli):
    nogold = tmp_path / "nogold"
    nogold.mkdir()
    (nogold / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 0, "sqrt_kl": 0.0}) + "\n")
    code, _, err = cli("overopt", nogold, "-o", tmp_path / "x.png")
    assert code == 2 and f"{nogold / 'metrics.jsonl'}:1: gold_mean: missing" in err
    assert not (tmp_path / "x.png").exists()
    code, _, err = cli("overopt", tmp_path, "-o", tmp_path / "x.png")
    assert code == 2 and "not an optimize run directory" in err
    a = rl_run(tmp_path / "a", 1.0, 0.5)
    code, _, err = cli("overopt", a, "--label", "big", "--by", "label", "-o", tmp_path / "x.png")
    assert code == 2 and "'big'" in err and "not a number" in err
