"""Imported transformers classifiers with num_labels > 1: `score` gives transformers' logits; where one scalar is
needed (serve, eval, TRL reward funcs) a k-class classifier gives its last class's log-odds (σ of it = softmax
probs[-1], what verl reads from /classify) — the mean of class logits carried no class information."""

import json

import pytest
import torch
from fastapi.testclient import TestClient

from rewardlab.evaluate.suite import score_with_members
from rewardlab.rewards.registry import load_reward
from rewardlab.serve.app import create_app
from rewardlab.serve.client import make_reward_func
from tests.models.hf_families import save_family

TEXTS = ["the cat sat on a mat", "good", "please help me with this task now yes no maybe", "big red dog"]


@torch.no_grad()
def _logits(model, tok):
    return torch.stack([model(**tok(t, return_tensors="pt")).logits[0] for t in TEXTS])


@pytest.mark.parametrize("family,k", [("llama", 2), ("bert", 2), ("llama", 3)])
def test_classifier_scalar_is_last_class_log_odds(family, k, corpus, tmp_path):
    model, tok = save_family(family, corpus, tmp_path / "rm", num_labels=k)
    logits = _logits(model, tok)
    expected = logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)
    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    assert torch.allclose(reward.score([""] * len(TEXTS), TEXTS), logits, atol=1e-5)  # the logits as they are
    with TestClient(create_app(reward)) as client:
        got = client.post("/get_reward", json={"query": TEXTS}).json()["rewards"]
        probs = [d["probs"] for d in client.post("/classify", json={"input": TEXTS}).json()["data"]]
    assert got == pytest.approx(expected.tolist(), abs=1e-5)
    assert [p[-1] for p in probs] == pytest.approx(torch.softmax(logits, -1)[:, -1].tolist(), abs=1e-5)
    s, members = score_with_members(reward, [""] * len(TEXTS), TEXTS)
    assert s.tolist() == pytest.approx(expected.tolist(), abs=1e-5) and members is None
    assert make_reward_func(reward)([""] * len(TEXTS), TEXTS) == pytest.approx(expected.tolist(), abs=1e-5)


def test_multi_attribute_regression_head_keeps_the_mean(corpus, tmp_path):
    """problem_type regression with k outputs (HelpSteer-style attributes): k objectives, reduced by the mean."""
    save_family("llama", corpus, tmp_path / "rm", num_labels=3)
    cfg = json.loads((tmp_path / "rm" / "config.json").read_text())
    (tmp_path / "rm" / "config.json").write_text(json.dumps(cfg | {"problem_type": "regression"}))
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    logits = _logits(model, AutoTokenizer.from_pretrained(tmp_path / "rm"))
    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    with TestClient(create_app(reward)) as client:
        got = client.post("/get_reward", json={"query": TEXTS}).json()["rewards"]
    assert got == pytest.approx(logits.mean(dim=1).tolist(), abs=1e-5)
