"""Reward models saved by plain transformers score exactly as transformers does, and stay padding invariant."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from rewardlab.data.batching import pad_batch
from rewardlab.errors import UserError
from rewardlab.rewards.registry import load_reward
from tests.models.hf_families import FAMILIES, save_family

TEXTS = ["the cat sat on a mat", "good", "please help me with this task now yes no maybe one two three four five",
         "big red dog"]
PAIRS = [("the cat sat on", " a big red mat"), ("question: one two", " answer: three"), ("yes", " no")]


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    model, tok = save_family(request.param, corpus, out)
    return request.param, out, model, tok


@torch.no_grad()
def _hf_logits(model, tok, *texts):
    # BERT tokenizers return token_type_ids (segment 1 = the second text); ask for them explicitly, since the
    # generic fast tokenizer of these tests does not by default
    types = {"return_token_type_ids": True} if getattr(model.config, "type_vocab_size", 0) > 1 else {}
    return model(**tok(*texts, return_tensors="pt", **types)).logits[0]


def test_single_texts_equal_transformers_logits(family_dir):
    family, path, model, tok = family_dir
    reward = load_reward(str(path), device="cpu")
    for text in TEXTS:
        got = reward.score([""], [text])
        assert torch.allclose(got, _hf_logits(model, tok, text), atol=1e-5), (family, text)


def test_prompt_response_pairs_equal_transformers(family_dir):
    """Encoders see the tokenizer's text pair (BERT with token_type_ids = 1 on the response); decoders one
    sequence prompt + response (as TRL builds it; no second bos before the response on Llama-3 tokenizers)."""
    family, path, model, tok = family_dir
    reward = load_reward(str(path), device="cpu")
    for prompt, response in PAIRS:
        ref = _hf_logits(model, tok, prompt, response) if family in ("bert", "roberta") else \
            _hf_logits(model, tok, prompt + response)
        assert torch.allclose(reward.score([prompt], [response]), ref, atol=1e-5), (family, prompt)


def test_batches_and_padding_side_do_not_change_scores(family_dir):
    family, path, _, _ = family_dir
    reward = load_reward(str(path), device="cpu")
    prompts, responses = [""] * len(TEXTS) + [p for p, _ in PAIRS], TEXTS + [r for _, r in PAIRS]
    one_by_one = torch.cat([reward.score([p], [r]).reshape(1) for p, r in zip(prompts, responses)])
    reward.batch_size = 16
    assert torch.allclose(reward.score(prompts, responses), one_by_one, atol=1e-5)
    seqs = reward.encode(prompts, responses)
    for side in ("left", "right"):
        ids, mask = pad_batch(seqs, reward.pad_id, side=side)
        with torch.no_grad():
            got = reward.model(ids, mask).squeeze(-1)
        assert torch.allclose(got, one_by_one, atol=1e-5), (family, side)


def test_conversations_render_once_with_the_models_special_tokens(family_dir):
    family, path, _, tok = family_dir
    reward = load_reward(str(path), device="cpu")
    prompt = [{"role": "user", "content": "the cat"}]
    ids = reward.encode([prompt], ["sat on a mat"])[0]
    if family == "llama":  # the template writes <|begin_of_text|>: exactly one bos
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    if family in ("bert", "roberta"):  # encoders keep [CLS] ... [SEP] around templated text
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id


def test_kind_detection_and_clear_errors(tmp_path, corpus):
    from transformers import GPT2LMHeadModel

    from rewardlab.models.hf_import import hf_reward_kind
    from rewardlab.models.tiny import tiny_gpt2_config, train_tiny_tokenizer

    tok = train_tiny_tokenizer(corpus, vocab_size=128)
    lm = tmp_path / "lm"
    GPT2LMHeadModel(tiny_gpt2_config(tok)).save_pretrained(lm)
    assert hf_reward_kind(lm) is None
    with pytest.raises(UserError, match="not a reward model"):
        load_reward(str(lm), device="cpu")

    rm = tmp_path / "rm"
    save_family("gpt2", corpus, rm)
    assert hf_reward_kind(rm) == "transformers"
    state = load_file(str(rm / "model.safetensors"))
    del state["score.weight"]
    save_file(state, str(rm / "model.safetensors"))
    with pytest.raises(UserError, match="missing.*score.weight"):  # never a random head
        load_reward(str(rm), device="cpu")

    pickled = tmp_path / "pickled"
    save_family("gpt2", corpus, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(UserError, match="never loads pickle"):
        load_reward(str(pickled), device="cpu")


def test_openrlhf_reward_model_with_normalization(tmp_path, corpus):
    """OpenRLHF layout: base model under its prefix + `value_head`, mean/std in config.json applied at eval."""
    from transformers import AutoModel, LlamaModel

    from tests.models.hf_families import family_config, family_tokenizer

    tok = family_tokenizer("llama", corpus)
    config = family_config("llama", tok)
    torch.manual_seed(3)
    base = LlamaModel(config).eval()
    head = torch.randn(1, config.hidden_size)
    state = {f"model.{k}": v for k, v in base.state_dict().items()} | {"value_head.weight": head}
    out = tmp_path / "openrlhf_rm"
    out.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    cfg = config.to_dict() | {"architectures": ["RewardModel"], "normalize_reward": True, "mean": 0.3, "std": 2.0}
    (out / "config.json").write_text(json.dumps(cfg))
    tok.save_pretrained(out)
    reward = load_reward(str(out), device="cpu")
    ref_base = AutoModel.from_config(config)
    ref_base.load_state_dict(base.state_dict())
    for text in TEXTS:
        ids = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = ref_base(input_ids=ids).last_hidden_state[0, -1]
        expected = ((h @ head[0]) - 0.3) / 2.0
        assert reward.score([""], [text]).item() == pytest.approx(expected.item(), abs=1e-5)


def test_train_base_keeps_the_trained_head(tmp_path, corpus):
    """`train --base HF_RM_DIR` fine-tunes the model's own head (its scores before training are transformers')."""
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import build_model

    model, tok = save_family("llama", corpus, tmp_path / "rm")
    rm, rm_tok = build_model(TrainConfig(base=str(tmp_path / "rm"), output=str(tmp_path / "out")), [])
    rm.eval()
    ids = rm_tok("the cat sat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got = rm(ids, torch.ones_like(ids))[0]
    assert torch.allclose(got, _hf_logits(model, tok, "the cat sat"), atol=1e-5)
    with pytest.raises(UserError, match="head is kept"):
        build_model(TrainConfig(base=str(tmp_path / "rm"), output=str(tmp_path / "o2"), num_outputs=3), [])
