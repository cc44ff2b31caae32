"""PEFT/LoRA reward-model adapters (TRL RewardTrainer with peft_config) score as PEFT computes them, or are refused
with what to do — never with a random head."""

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, LlamaForCausalLM

from rewardlab.errors import UserError
from rewardlab.rewards.registry import load_reward
from tests.models.hf_families import family_config, family_tokenizer

TEXTS = ["the cat sat on a mat", "good", "please help me with this task now yes no maybe", "big red dog"]


@pytest.fixture(scope="module")
def adapter(corpus, tmp_path_factory):
    """TRL's layout: a causal-LM base (no head), AutoModelForSequenceClassification(base, num_labels=2) + LoRA
    (task SEQ_CLS: the new `score` head saved through modules_to_save), adapter + tokenizer saved."""
    root = tmp_path_factory.mktemp("peft")
    tok = family_tokenizer("llama", corpus)
    torch.manual_seed(0)
    LlamaForCausalLM(family_config("llama", tok)).save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    model = AutoModelForSequenceClassification.from_pretrained(root / "base", num_labels=2)
    peft = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"],
                                            modules_to_save=["score"]))
    with torch.no_grad():  # as if trained: non-zero LoRA updates and a trained head
        for name, p in peft.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.normal_(0, 0.5)
    peft.save_pretrained(root / "adapter")
    tok.save_pretrained(root / "adapter")
    ref = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(root / "base", num_labels=2),
                                    root / "adapter").eval()
    return root, ref, tok


def test_adapter_scores_equal_peft_and_batches_do_not_change_them(adapter):
    root, ref, tok = adapter
    reward = load_reward(str(root / "adapter"), device="cpu")
    with torch.no_grad():
        expected = torch.stack([ref(**tok(t, return_tensors="pt")).logits[0] for t in TEXTS])
    single = torch.stack([reward.score([""], [t])[0] for t in TEXTS])
    assert torch.allclose(single, expected, atol=1e-5)
    reward.batch_size = 8
    assert torch.allclose(reward.score([""] * len(TEXTS), TEXTS), expected, atol=1e-5)


def test_cli_scores_an_adapter_dir(adapter, cli, tmp_path):
    root, ref, tok = adapter
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"prompt": "", "response": t}) + "\n" for t in TEXTS))
    code, _, err = cli("score", root / "adapter", data, "-o", tmp_path / "out.jsonl")
    assert code == 0, err
    got = [json.loads(line)["score"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    with torch.no_grad():
        expected = [ref(**tok(t, return_tensors="pt")).logits[0].tolist() for t in TEXTS]
    assert torch.allclose(torch.tensor(got), torch.tensor(expected), atol=1e-5)


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_adapters_that_cannot_be_scored_faithfully_are_refused(adapter, tmp_path):
    root, _, _ = adapter
    no_base = _copy(root / "adapter", tmp_path / "no_base")
    cfg = json.loads((no_base / "adapter_config.json").read_text())
    (no_base / "adapter_config.json").write_text(json.dumps(cfg | {"base_model_name_or_path": "org/hub-model"}))
    with pytest.raises(UserError, match="base model of this adapter: org/hub-model: no such local file or directory, "
                                        "and no model in the Hugging Face cache"):
        load_reward(str(no_base), device="cpu")

    headless = _copy(root / "adapter", tmp_path / "headless")  # the head was not saved: the base has none either
    state = load_file(str(headless / "adapter_model.safetensors"))
    save_file({k: v for k, v in state.items() if "score" not in k}, str(headless / "adapter_model.safetensors"))
    with pytest.raises(UserError, match="neither the base.*score.weight"):
        load_reward(str(headless), device="cpu")

    pickled = _copy(root / "adapter", tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(UserError, match="adapter_model.bin.*never loads pickle"):
        load_reward(str(pickled), device="cpu")

    lm = _copy(root / "adapter", tmp_path / "lm")
    (lm / "adapter_config.json").write_text(json.dumps(cfg | {"task_type": "CAUSAL_LM"}))
    with pytest.raises(UserError, match="task_type 'CAUSAL_LM', not a reward model"):
        load_reward(str(lm), device="cpu")


def test_a_hub_base_is_taken_from_the_hf_cache(adapter, tmp_path, monkeypatch):
    """TRL adapters name their base by hub id: it is found as a snapshot in the HF cache (no local path needed)."""
    import shutil

    from huggingface_hub import constants

    root, ref, tok = adapter
    commit = "f" * 40
    cache = tmp_path / "hub"
    shutil.copytree(root / "base", cache / "models--org--hub-model" / "snapshots" / commit)
    (cache / "models--org--hub-model" / "refs").mkdir()
    (cache / "models--org--hub-model" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    hub_adapter = _copy(root / "adapter", tmp_path / "hub_adapter")
    cfg = json.loads((hub_adapter / "adapter_config.json").read_text())
    (hub_adapter / "adapter_config.json").write_text(json.dumps(cfg | {"base_model_name_or_path": "org/hub-model"}))
    with torch.no_grad():
        expected = torch.stack([ref(**tok(t, return_tensors="pt")).logits[0] for t in TEXTS])
    got = load_reward(str(hub_adapter), device="cpu").score([""] * len(TEXTS), TEXTS)
    assert torch.allclose(got, expected, atol=1e-5)
