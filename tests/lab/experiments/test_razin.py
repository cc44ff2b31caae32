"""Verdict rules of the Razin experiment: synthetic per-seed numbers in, expected verdicts out — in both directions
(and inconclusive when the seeds disagree); the settings table's bolding; a tiny end-to-end run with its figures."""

from dataclasses import replace

import numpy as np
import pytest

from rewardlab.lab.experiments import razin, razin_family
from rewardlab.lab.figures import razin as razin_figures
from rewardlab.lab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from rewardlab.lab.world import WorldConfig

SEEDS = 5  # the sign test needs 5 seeds for p < 0.05
CFG = razin.RazinConfig()
MIXED = [True, True, True, False, False]  # 3 seeds one way, 2 the other: the sign test cannot decide


def _seed(rng, early_from="rv", late_from="on_acc", lowvar_gap=0.2, th=None, family_from="own",
          indep_from="rv") -> dict:
    """One synthetic seed. The trained proxies' gain at a budget is the named metric (under the trained policy)
    plus a little noise; the low-RV RM gains ``lowvar_gap`` less than the highest-RV proxy; the threshold RM gains
    r*'s gain + th[policy]; the focused family's gain follows RV under the trained policy ("own"), under the other
    one ("other"), or the family's RV is the same under both policies ("same"). The independent family's early
    gain is its metric ``indep_from`` plus a little noise (its late gain follows on-policy accuracy)."""
    th = th or {"pi0": -0.1, "B": 0.1}
    n = len(CFG.proxy_specs(0))
    names = [s.name for s in CFG.proxy_specs(0)] + list(razin.CONSTRUCTED) + [f for f, _, _ in CFG.family()]
    fam = [names.index(f) for f, _, _ in CFG.family()]
    R = len(names)
    out = {"names": names, "n_trained": n, "family": fam, "metrics": {}, "gain": {}, "curves": {},
           "per_prompt_gain": {}}
    for pol in razin.POLICIES:
        met = {m: rng.uniform(0.2, 0.9, R) for m in razin.METRICS}
        met["rv_per_prompt"] = rng.uniform(0, 1, (R, 4))
        out["metrics"][pol] = met
    if family_from == "same":
        out["metrics"]["B"]["rv"][fam] = out["metrics"]["pi0"]["rv"][fam]
    i_ref = int(np.argmax(out["metrics"]["pi0"]["rv"][:n]))
    for pol in razin.POLICIES:
        alt = "B" if pol == "pi0" else "pi0"
        for budget, source in ((CFG.early, early_from), (CFG.late, late_from)):
            gain = np.full(R, 0.5)
            gain[:n] = out["metrics"][pol][source][:n] + 0.01 * rng.standard_normal(n)
            gain[names.index("perfect, low-RV")] = gain[i_ref] - lowvar_gap
            gain[names.index("perfect, threshold")] = 0.5 + th[pol]
            gain[fam] = out["metrics"][alt if family_from == "other" else pol]["rv"][fam]
            for method in razin.METHODS:
                for lr in CFG.lrs:
                    out["gain"][f"{pol}|{method}|{lr:g}|{budget}"] = gain.copy()
        for method in razin.METHODS:
            for lr in CFG.lrs:
                e, la = (out["gain"][f"{pol}|{method}|{lr:g}|{b}"] for b in (CFG.early, CFG.late))
                out["curves"][f"{pol}|{method}|{lr:g}"] = {"steps": [0, CFG.early, CFG.late],
                                                           "gain": np.stack([0 * e, e, la])}
    out["per_prompt_gain"][razin.primary_key(CFG)] = np.repeat(out["gain"][razin.primary_key(CFG)][:, None], 4, 1)
    fam_cfg, k = CFG.independent, 12
    met = {m: rng.uniform(0.2, 0.9, k) for m in razin_family.METRICS}
    gains = {fam_cfg.early: met[indep_from] + 0.01 * rng.standard_normal(k),
             fam_cfg.late: met["on_acc"] + 0.01 * rng.standard_normal(k)}
    out["independent"] = razin_family.seed_record(0, np.zeros((k, 3)), met, gains)
    return out


def _claims(seed_kwargs: list[dict], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {c.id: c for c in razin.summarize(CFG, [_seed(rng, **kw) for kw in seed_kwargs]).claims}


def _mixed(key: str, yes, no) -> list[dict]:
    return [{key: yes if m else no} for m in MIXED]


@pytest.mark.parametrize("seeds,expected", [
    ([{"indep_from": "rv"}] * SEEDS, REPRODUCED),
    ([{"indep_from": "on_acc"}] * SEEDS, NOT_REPRODUCED),
    ([{"indep_from": "off_acc"}] * SEEDS, NOT_REPRODUCED),   # off-policy accuracy counts as accuracy too
    (_mixed("indep_from", "rv", "on_acc"), INCONCLUSIVE),
    # decided on the independent family, not on the zoo: a zoo against RV does not change the verdict
    ([{"indep_from": "rv", "early_from": "on_acc"}] * SEEDS, REPRODUCED),
])
def test_early_claim_rv_beats_the_better_accuracy_on_the_independent_family(seeds, expected):
    c = _claims(seeds)["razin-rv-early"]
    assert c.verdict == expected
    fam = CFG.independent
    assert "max(ρ(gain, on-acc), ρ(gain, off-acc))" in c.rule and f"for {fam.early} steps" in c.rule
    assert len(c.values["gap"]) == SEEDS and c.diagnosis.startswith("family gap per seed")
    assert f"Trained zoo: at {CFG.early} steps" in c.diagnosis and len(c.values["zoo_gap"]) == SEEDS


def test_early_claim_reports_the_late_reversal_on_the_family():
    c = _claims([{"indep_from": "rv"}] * SEEDS)["razin-rv-early"]
    assert all(v < 0 for v in c.values["gap_late"])  # late gains follow accuracy in _seed
    assert f"accuracy ahead in {SEEDS}/{SEEDS} seeds" in c.measured


@pytest.mark.parametrize("seeds,expected", [
    ([{"late_from": "on_acc"}] * SEEDS, REPRODUCED),
    ([{"late_from": "off_acc"}] * SEEDS, REPRODUCED),
    ([{"late_from": "rv"}] * SEEDS, NOT_REPRODUCED),
    (_mixed("late_from", "on_acc", "rv"), INCONCLUSIVE),
])
def test_late_claim_accuracy_beats_rv(seeds, expected):
    c = _claims(seeds)["razin-acc-late"]
    assert c.verdict == expected and f"after {CFG.late} steps" in c.rule and c.rule.endswith("< 0")


def test_budget_claims_are_independent_and_the_diagnosis_names_the_seeds_against():
    # RV predicts both early and late: early reproduced, late not; the late diagnosis lists every seed against it.
    claims = _claims([{"early_from": "rv", "late_from": "rv"}] * SEEDS)
    assert claims["razin-rv-early"].verdict == REPRODUCED and claims["razin-acc-late"].verdict == NOT_REPRODUCED
    assert "Seeds against the claim: 0, 1, 2, 3, 4" in claims["razin-acc-late"].diagnosis
    assert claims["razin-acc-late"].reason  # shown in the report


@pytest.mark.parametrize("seeds,expected", [
    ([{"lowvar_gap": 0.2}] * SEEDS, REPRODUCED),
    ([{"lowvar_gap": -0.2}] * SEEDS, NOT_REPRODUCED),
    (_mixed("lowvar_gap", 0.2, -0.2), INCONCLUSIVE),
])
def test_lowvar_rule(seeds, expected):
    c = _claims(seeds, seed=1)["razin-lowvar-slow"]
    assert c.verdict == expected
    assert c.values["difference"] == pytest.approx([kw["lowvar_gap"] for kw in seeds])


@pytest.mark.parametrize("seeds,expected", [
    ([{"th": {"pi0": -0.1, "B": 0.1}}] * SEEDS, REPRODUCED),
    ([{"th": {"pi0": -0.1, "B": -0.1}}] * SEEDS, NOT_REPRODUCED),
    ([{"th": {"pi0": 0.1, "B": 0.1}}] * SEEDS, NOT_REPRODUCED),
    (_mixed("th", {"pi0": -0.1, "B": 0.1}, {"pi0": 0.1, "B": 0.1}), INCONCLUSIVE),
])
def test_policy_dependence_rule(seeds, expected):
    c = _claims(seeds, seed=2)["razin-policy-dependent"]
    assert c.verdict == expected
    assert c.values["pi0"] == pytest.approx([kw["th"]["pi0"] for kw in seeds])


@pytest.mark.parametrize("seeds,expected", [
    ([{"family_from": "own"}] * SEEDS, REPRODUCED),
    ([{"family_from": "other"}] * SEEDS, NOT_REPRODUCED),
    (_mixed("family_from", "own", "other"), INCONCLUSIVE),
    ([{"family_from": "same"}] * SEEDS, INCONCLUSIVE),  # identical RV under both policies: ρ(own) = ρ(other)
])
def test_policy_specific_rv_on_the_focused_family(seeds, expected):
    c = _claims(seeds, seed=3)["razin-rv-policy-specific"]
    assert c.verdict == expected
    assert len(c.values["gap"]) == SEEDS and len(c.values["rv_rank_corr"]) == SEEDS


def test_policy_specific_diagnosis_reports_the_rv_rank_correlation():
    same = _claims([{"family_from": "same"}] * SEEDS, seed=4)["razin-rv-policy-specific"]
    assert same.values["rv_rank_corr"] == pytest.approx([1.0] * SEEDS)
    assert "correlate +1.00" in same.diagnosis and "alike" in same.diagnosis
    assert same.values["gap"] == pytest.approx([0.0] * SEEDS)


# -------------------------------------------------------------------------------------------- settings table
def test_best_cell_bolds_only_a_separated_winner():
    rv = [0.9, 0.8, 0.85, 0.9, 0.88]
    separated = {"rv": rv, "on_acc": [0.3, 0.4, 0.2, 0.35, 0.3], "off_acc": [0.1, 0.2, 0.0, 0.1, 0.2]}
    best, (lo, hi) = razin_figures.best_cell(separated)
    assert best == "rv" and 0 < lo <= hi
    # runner-up ahead in 2 of 5 seeds: mean difference +0.04 (by hand) but the bootstrap CI includes 0
    close = {"rv": rv, "on_acc": [0.7, 0.9, 0.75, 1.0, 0.78], "off_acc": [0.1] * 5}
    best, (lo, hi) = razin_figures.best_cell(close)
    assert best is None and lo <= 0 <= hi
    assert np.mean(np.subtract(rv, close["on_acc"])) == pytest.approx(0.04)


def test_table_bolds_per_row_by_the_ci():
    rows = [{"policy": "pi0", "method": "rloo", "lr": 0.3, "steps": 20, "spearman_rv": [0.9, 0.8, 0.85, 0.9, 0.88],
             "spearman_on_acc": [0.3, 0.4, 0.2, 0.35, 0.3], "spearman_off_acc": [0.1] * 5},
            {"policy": "B", "method": "exact", "lr": 1.0, "steps": 200, "spearman_rv": [0.9, 0.8, 0.85, 0.9, 0.88],
             "spearman_on_acc": [0.7, 0.9, 0.75, 1.0, 0.78], "spearman_off_acc": [0.1] * 5}]
    html = razin_figures.table({"corr_rows": rows})
    first, second = html.split("<tr><td>")[1:]
    assert "<b>0.87</b>" in first and "<b>" not in second


# -------------------------------------------------------------------------------------------- end to end (tiny)
def test_tiny_run_measures_the_family_and_draws_the_figures(tmp_path):
    cfg = replace(CFG, world=replace(WorldConfig(), n_prompts=8, n_candidates=8), n_pairs=(50,),
                  on_policy_fractions=(0.0, 1.0), hidden_sizes=(0, 8), early=3, late=6, m_samples=4, eval_pairs=50,
                  proxy_steps=20, independent=razin_family.FamilyConfig(n_prompts=8, n_candidates=8, size=6, early=3,
                                                                         late=6, m_samples=4, eval_pairs=50))
    res = razin.run(cfg, [0, 1])
    o = res.data["per_seed"][0]
    fam = o["family"]
    assert [o["names"][i] for i in fam] == [n for n, _, _ in cfg.family()]
    for pol in razin.POLICIES:  # the constructed RMs are perfectly accurate under any policy
        assert np.all(np.asarray(o["metrics"][pol]["on_acc"])[o["n_trained"]:] == 1.0)
        assert np.all(np.asarray(o["metrics"][pol]["off_acc"])[o["n_trained"]:] == 1.0)
    claims = {c.id: c for c in res.claims}
    assert set(claims) == {"razin-rv-early", "razin-acc-late", "razin-lowvar-slow", "razin-policy-dependent",
                           "razin-rv-policy-specific"}
    assert all(c.diagnosis for c in res.claims)
    figs = razin_figures.figures(res.data, tmp_path, claims)
    assert len(figs) == 6 and all((tmp_path / png).exists() for png, _ in figs)
    assert all("Here:" in cap for png, cap in figs if png != "razin_correlations.png"
               and png != "razin_per_prompt.png")
