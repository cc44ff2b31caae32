"""Model cards: train and export write README.md with the metrics and how to load the model; the card is not
mistaken for TRL's (no reward-trainer tag), so scoring is unchanged."""

import torch

from rewardlab.data.records import PreferencePair
from rewardlab.models.export import export_hf
from rewardlab.models.formats.hf_classifier import trl_reward_trainer_version
from rewardlab.rewards.model import ModelReward
from rewardlab.train.config import TrainConfig
from rewardlab.train.trainer import train_reward_model


def test_train_and_export_write_a_model_card(tmp_path, pair_rows):
    pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in pair_rows[:24]]
    out = tmp_path / "rm"
    summary = train_reward_model(pairs, TrainConfig(output=str(out), epochs=1, batch_size=8, max_length=64,
                                                    tiny_vocab=300), eval_pairs=pairs, progress=False)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: rewardlab\n") and "reward-trainer" not in card
    assert f"| eval_accuracy | {summary['metrics']['eval_accuracy']:.4g} |" in card
    assert "on 24 preference pairs" in card and "ModelReward.from_pretrained" in card
    hf = export_hf(out, tmp_path / "hf")
    exported = (hf / "README.md").read_text()
    assert "AutoModelForSequenceClassification.from_pretrained" in exported and "reward-trainer" not in exported
    assert trl_reward_trainer_version(hf) is None  # not read as a TRL RewardTrainer output
    a = ModelReward.from_pretrained(out).score(["the cat"], [" sat"])
    assert torch.isfinite(a).all()
