"""Directories written by TRL's real RewardTrainer (trl >= 0.24 appends eos to plain text before tokenizing) are
scored on the very ids TRL trained them on: compared with the trainer's own tokenized dataset and with
transformers' logits on those ids, for three tokenizer layouts (GPT-2 style with an eos post-processor, Llama-3
style with bos, Mistral style SentencePiece)."""

from __future__ import annotations

import random
import shutil

import pytest
import torch

from rewardlab.rewards.registry import load_reward
from tests.conftest import sentence
from tests.models.hf_families import family_config, family_tokenizer

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

ROWS = 8


def _rows(conversational: bool) -> list[dict]:
    rng = random.Random(3)
    rows = []
    for _ in range(ROWS):
        prompt, chosen, rejected = sentence(rng), " good " + sentence(rng), " bad " + sentence(rng)
        if conversational:
            rows.append({"prompt": [{"role": "user", "content": prompt}],
                         "chosen": [{"role": "assistant", "content": chosen.strip()}],
                         "rejected": [{"role": "assistant", "content": rejected.strip()}]})
        else:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def _train_with_trl(family: str, corpus, out, rows):
    """Two RewardTrainer steps; the output dir holds TRL's model card (written at each checkpoint) and the model."""
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    tok = family_tokenizer(family, corpus)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    config = family_config(family, tok, 1)
    config.pad_token_id = tok.pad_token_id
    model = AutoModelForSequenceClassification.from_config(config)
    args = RewardConfig(output_dir=str(out), per_device_train_batch_size=4, max_steps=2, save_strategy="steps",
                        save_steps=1, learning_rate=1e-3, report_to="none", use_cpu=True, bf16=False,
                        disable_tqdm=True, dataloader_num_workers=0, seed=0)
    trainer = RewardTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                            processing_class=tok)
    trainer.train()
    trainer.save_model(str(out))
    return trainer


@torch.no_grad()
def _logits(model, ids: list[int]) -> float:
    return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


@pytest.mark.parametrize("family", ["gpt2", "llama", "mistral"])
def test_plain_text_rewards_are_read_where_trl_trained_them(family, corpus, tmp_path):
    rows = _rows(conversational=False)
    trainer = _train_with_trl(family, corpus, tmp_path / "rm", rows)
    assert "reward-trainer" in (tmp_path / "rm" / "README.md").read_text()
    trl_ids = trainer.train_dataset["chosen_ids"]  # TRL's own tokenization: prompt + chosen + eos
    eos = trainer.processing_class.eos_token_id
    assert all(ids[-1] == eos for ids in trl_ids)

    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    prompts, chosen = [r["prompt"] for r in rows], [r["chosen"] for r in rows]
    assert reward.encode(prompts, chosen) == [list(ids) for ids in trl_ids]
    model = trainer.model.eval()
    expected = torch.tensor([_logits(model, ids) for ids in trl_ids])
    assert torch.allclose(reward.score(prompts, chosen), expected, atol=1e-5)

    # the same weights without TRL's card (a checkpoint-N folder, or TRL < 0.24): tokenizer(text) as transformers does
    bare = tmp_path / "bare"
    shutil.copytree(tmp_path / "rm", bare)
    (bare / "README.md").write_text((bare / "README.md").read_text().replace("- TRL: ", "- TRL: 0.23.0 was "))
    plain = trainer.processing_class(prompts[0] + chosen[0])["input_ids"]
    assert load_reward(str(bare), device="cpu").encode(prompts[:1], chosen[:1]) == [plain]
    (bare / "README.md").unlink()
    assert load_reward(str(bare), device="cpu").encode(prompts[:1], chosen[:1]) == [plain]


def test_conversations_get_the_template_only_as_trl_does(corpus, tmp_path):
    rows = _rows(conversational=True)
    trainer = _train_with_trl("llama", corpus, tmp_path / "rm", rows)
    trl_ids = trainer.train_dataset["rejected_ids"]
    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    prompts, rejected = [r["prompt"] for r in rows], [r["rejected"] for r in rows]
    assert reward.encode(prompts, rejected) == [list(ids) for ids in trl_ids]
    expected = torch.tensor([_logits(trainer.model.eval(), ids) for ids in trl_ids])
    assert torch.allclose(reward.score(prompts, rejected), expected, atol=1e-5)


def test_model_card_reading(tmp_path):
    from rewardlab.models.formats.hf_classifier import trl_reward_trainer_version

    card = "---\nlibrary_name: transformers\ntags:\n- generated_from_trainer\n- {tag}\n- trl\n---\n\n- TRL: {v}\n"
    cases = {("reward-trainer", "0.24.0"): (0, 24), ("reward-trainer", "1.16.0.dev0"): (1, 16),
             ("reward-trainer", "0.19.1"): (0, 19), ("sft", "0.24.0"): None}
    for (tag, v), expected in cases.items():
        (tmp_path / "README.md").write_text(card.format(tag=tag, v=v))
        assert trl_reward_trainer_version(tmp_path) == expected, (tag, v)
    (tmp_path / "README.md").write_text("---\ntags: [reward-trainer\n---\n")  # broken YAML: no card, no crash
    assert trl_reward_trainer_version(tmp_path) is None
    (tmp_path / "README.md").unlink()
    assert trl_reward_trainer_version(tmp_path) is None
