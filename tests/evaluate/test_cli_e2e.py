"""End to end: train a tiny RM with the foundation trainer, run `rewardlab eval` on it, and check metrics.json
against the metric functions applied to scores computed independently (one item at a time, straight through the
RewardModel) and to an independently drawn rollout of the policy."""

import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.tokenize import encode
from rewardlab.evaluate import calibration as C
from rewardlab.evaluate import metrics as M
from rewardlab.models.checkpoint import load_reward_model, save_reward_model
from rewardlab.models.generation import sample
from rewardlab.models.tiny import tiny_causal_lm, tiny_reward_model

WORDS = "the cat dog sat ran on under mat log big small red blue".split()


def _sent(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from rewardlab.data.records import PreferencePair
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    d = tmp_path_factory.mktemp("evalworld")
    rng = random.Random(0)
    rows = []
    for i in range(64):  # learnable: chosen says "good", rejected says "bad"; lengths vary independently
        rows.append({"prompt": _sent(rng, 4), "chosen": _sent(rng, rng.randint(1, 6)) + " good",
                     "rejected": _sent(rng, rng.randint(1, 6)) + " bad", "subset": ["alpacaeval-easy", "hep-go",
                                                                                      "math-prm", "mine"][i % 4]})
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": _sent(rng, 3)}) + "\n" for _ in range(5)))
    pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"], subset=r["subset"]) for r in rows]
    cfg = TrainConfig(output=str(d / "rm"), epochs=3, batch_size=16, lr=3e-3, max_length=64, tiny_vocab=300)
    train_reward_model(pairs, cfg, progress=False)
    _, tok, _ = load_reward_model(d / "rm")
    save_reward_model(tiny_reward_model(tok, seed=5), tok, d / "gold")
    lm = tiny_causal_lm(tok, seed=1)
    lm.save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    return d


def _scores_one_by_one(path, prompts, responses):
    model, tok, manifest = load_reward_model(path)
    out = []
    with torch.no_grad():
        for p, r in zip(prompts, responses, strict=True):
            ids = torch.tensor([encode(tok, p, r, max_length=manifest.get("max_length", 512))])
            out.append(float(model(ids, torch.ones_like(ids))[0, 0]))
    return np.array(out)


def test_rewardlab_eval_end_to_end(world):
    out = world / "report"
    res = CliRunner().invoke(app, ["eval", str(world / "rm"), "--data", str(world / "pairs.jsonl"),
                                   "--policy", str(world / "policy"), "--prompts", str(world / "prompts.jsonl"),
                                   "--gold", str(world / "gold"), "-m", "4", "--max-new-tokens", "8",
                                   "--compare", str(world / "gold"), "--output", str(out)])
    assert res.exit_code == 0, res.output
    for f in ["metrics.json", "report.html", "reliability.png", "reward_histograms.png", "reward_vs_length.png",
              "subsets.png", "rv_per_prompt.png"]:
        assert (out / f).stat().st_size > 1000, f
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "src='reliability.png'" not in html
    assert "percentile bootstrap CI" in html and "On-policy acc.: " in html  # the CIs and the paired tests
    rm, gold = str(world / "rm"), str(world / "gold")  # named by the spec as typed
    s = json.loads((out / "metrics.json").read_text())["models"][rm]["summary"]
    lo, hi = s["accuracy_ci"]
    assert f"accuracy={s['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]" in res.output and lo <= s["accuracy"] <= hi

    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["models"]) == [rm, gold]
    assert f"{gold}: accuracy=" in res.output  # the terminal shows every compared model
    m = doc["models"][rm]
    rows = [json.loads(line) for line in (world / "pairs.jsonl").read_text().splitlines()]
    c = _scores_one_by_one(world / "rm", [r["prompt"] for r in rows], [r["chosen"] for r in rows])
    r = _scores_one_by_one(world / "rm", [r["prompt"] for r in rows], [r["rejected"] for r in rows])
    assert m["pairs"]["accuracy"] == M.pairwise_accuracy(c, r)
    assert m["pairs"]["accuracy"] > 0.8  # the trained RM learned good > bad
    assert m["pairs"]["calibration"]["ece"] == pytest.approx(C.expected_calibration_error(C.preference_probs(c - r)),
                                                             abs=1e-5)
    assert m["pairs"]["calibration"]["brier"] == pytest.approx(C.brier_score(C.preference_probs(c - r)), abs=1e-5)
    lc, lr = [len(x["chosen"]) for x in rows], [len(x["rejected"]) for x in rows]
    assert m["pairs"]["length_bias"] == pytest.approx(M.length_bias(c, r, lc, lr), abs=1e-5)
    subs = [x["subset"] for x in rows]
    acc = {k: v["accuracy"] for k, v in M.subset_accuracy(c, r, subs).items()}
    assert m["pairs"]["sections"]["overall"] == pytest.approx(M.section_scores(acc)["overall"])

    # teacher metrics: independently drawn rollout (one chunk of 5 prompts -> seed 0) and one-by-one scoring
    from rewardlab.data.load import load_prompts
    from rewardlab.models.backbone import load_causal_lm

    lm, tok = load_causal_lm(world / "policy")
    ro = sample(lm, tok, load_prompts(world / "prompts.jsonl"), num_samples=4, max_new_tokens=8, seed=0)
    rr = _scores_one_by_one(world / "rm", ro.prompts, ro.responses)
    gg = _scores_one_by_one(world / "gold", ro.prompts, ro.responses)
    t = m["teacher"]
    assert t["n_responses"] == 20 and t["n_prompts"] == 5
    assert t["reward_variance"] == pytest.approx(M.reward_variance(rr, ro.group), abs=1e-4)
    assert t["reward_variance_per_prompt"] == pytest.approx(M.per_prompt_reward_variance(rr, ro.group), abs=1e-4)
    assert t["on_policy_accuracy"] == pytest.approx(M.on_policy_accuracy(rr, gg, ro.group))
    # the gold compared with itself: perfect on-policy accuracy, same RV as the gold's RV above
    g = doc["models"][gold]["teacher"]
    assert g["on_policy_accuracy"] == 1.0
    assert g["reward_variance"] == pytest.approx(t["gold_reward_variance"])


def test_eval_user_errors(world, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "chosen": "a"}\n')
    res = CliRunner().invoke(app, ["eval", str(world / "rm"), "--data", str(bad), "--output", str(tmp_path / "o")])
    assert res.exit_code != 0 and "bad.jsonl:1" in str(res.exception)
    res = CliRunner().invoke(app, ["eval", str(world / "rm"), "--output", str(tmp_path / "o")])
    assert "--data" in str(res.exception)
