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
PAIRS = [("the cat sat on", " a big red mat"), ("question: one two", " answer: three"), ("yes", " no"),
         ("the cat", "sat")]  # no space at the boundary: decoders tokenize prompt + response as one text


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


@pytest.mark.parametrize("reply", ["sat on a mat", " sat", "good answer\nyes"])
def test_conversations_equal_transformers_on_the_chat_template(family_dir, reply):
    """Templated text is tokenized as one text, as apply_chat_template(tokenize=True) and TRL tokenize it (a
    Mistral reply tokenized on its own got a leading '▁' it has not after [/INST]); scores = transformers'."""
    family, path, model, tok = family_dir
    if tok.chat_template is None:
        pytest.skip("no chat template of its own")
    reward = load_reward(str(path), device="cpu")
    conv = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": reply}]
    expected = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
    assert reward.encode([conv[:1]], [conv[1:]])[0] == list(expected)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([expected])).logits[0]
    assert torch.allclose(reward.score([conv[:1]], [conv[1:]]), ref, atol=1e-5)


def test_kind_detection_and_clear_errors(tmp_path, corpus):
    from transformers import GPT2LMHeadModel

    from rewardlab.models.formats import detect
    from rewardlab.models.tiny import tiny_gpt2_config, train_tiny_tokenizer

    tok = train_tiny_tokenizer(corpus, vocab_size=128)
    lm = tmp_path / "lm"
    GPT2LMHeadModel(tiny_gpt2_config(tok)).save_pretrained(lm)
    assert detect(lm) is None
    with pytest.raises(UserError, match="not a reward model"):
        load_reward(str(lm), device="cpu")
    config = json.loads((lm / "config.json").read_text())  # ArmoRM-style: a class from the repo's own code
    config |= {"architectures": ["LlamaForRewardModelWithGating"],
               "auto_map": {"AutoModelForSequenceClassification": "modeling_custom.LlamaForRewardModelWithGating"}}
    (lm / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="LlamaForRewardModelWithGating is remote code.*never runs"):
        load_reward(str(lm), device="cpu")

    rm = tmp_path / "rm"
    save_family("gpt2", corpus, rm)
    assert detect(rm).name == "transformers"
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
    """OpenRLHF layout: base model under its prefix + `value_head`, mean/std in config.json applied at eval, and
    every sequence ending with eos as OpenRLHF's serve_rm (`tokenizer(query + eos)`) and RewardDataset build it
    (the reward is read there; without it the scores were those of another position)."""
    from fastapi.testclient import TestClient
    from transformers import AutoModel

    from rewardlab.serve.app import create_app
    from tests.models.hf_families import save_openrlhf

    out = tmp_path / "openrlhf_rm"
    tok, config, base, head = save_openrlhf(corpus, out, mean=0.3, std=2.0)
    reward = load_reward(str(out), device="cpu")
    ref_base = AutoModel.from_config(config)
    ref_base.load_state_dict(base.state_dict())

    @torch.no_grad()
    def openrlhf(ids):
        return ((ref_base(input_ids=torch.tensor([ids])).last_hidden_state[0, -1] @ head[0] - 0.3) / 2.0).item()

    expected = [openrlhf(tok(text + tok.eos_token)["input_ids"]) for text in TEXTS]
    assert reward.score([""] * len(TEXTS), TEXTS).tolist() == pytest.approx(expected, abs=1e-5)
    with TestClient(create_app(reward)) as client:  # a query that kept its eos gets no second one
        queries = [TEXTS[0] + tok.eos_token] + TEXTS[1:]
        got = client.post("/get_reward", json={"query": queries}).json()["rewards"]
    assert got == pytest.approx(expected, abs=1e-5)
    conv = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat on a mat"}]
    for template, ends_with_eos in ((None, True), ("{% for m in messages %}{{ m['content'] }}\n{% endfor %}", False)):
        text = tok.apply_chat_template(conv, tokenize=False, chat_template=template)
        assert text.endswith(tok.eos_token) == ends_with_eos
        ids = tok(text if ends_with_eos else text + tok.eos_token, add_special_tokens=False)["input_ids"]
        ids = ids if ids[0] == tok.bos_token_id else [tok.bos_token_id] + ids
        reward.encoder.rendering.chat_template = template
        assert reward.encode([conv[:1]], [conv[1:]])[0] == ids
        assert reward.score([conv[:1]], [conv[1:]]).item() == pytest.approx(openrlhf(ids), abs=1e-5)


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
