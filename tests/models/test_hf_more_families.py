"""More transformers reward-model families than hf_families' five, each built from config with num_labels 1 and 2
and saved with save_pretrained: rewardlab's scores equal transformers' logits on every single unpadded text and
on prompt + response, and batching (length-sorted, padded) does not change them."""

import pytest
import torch
import transformers as T
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardlab.rewards.registry import load_reward
from tests.models.hf_families import family_tokenizer

TEXTS = ["the cat sat on a mat", "good", "please help me with this task now yes no maybe one two three", "big dog"]
PAIRS = [("the cat sat on", " a big red mat"), ("yes", " no"), ("the cat", "sat")]
LAYERS = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, max_position_embeddings=128)


def _decoder(name, tok, k):
    c = dict(vocab_size=len(tok), num_labels=k, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
             num_attention_heads=4, **LAYERS)
    return {
        "qwen2": lambda: T.Qwen2Config(num_key_value_heads=2, **c),
        "qwen3": lambda: T.Qwen3Config(num_key_value_heads=2, head_dim=8, **c),
        "gemma2": lambda: T.Gemma2Config(num_key_value_heads=2, head_dim=8, **c),
        "phi3": lambda: T.Phi3Config(num_key_value_heads=2, pad_token_id=None, **c),
        "gpt_neox": lambda: T.GPTNeoXConfig(**c),
        "opt": lambda: T.OPTConfig(num_hidden_layers=2, hidden_size=32, ffn_dim=64, num_attention_heads=4,
                                   max_position_embeddings=128, word_embed_proj_dim=32, pad_token_id=tok.pad_token_id,
                                   vocab_size=len(tok), num_labels=k, bos_token_id=tok.bos_token_id,
                                   eos_token_id=tok.eos_token_id),
    }[name]()


def _encoder(name, tok, k):
    c = dict(vocab_size=len(tok), num_labels=k, pad_token_id=tok.pad_token_id)
    return {
        "deberta-v2": lambda: T.DebertaV2Config(relative_attention=True, pos_att_type=["p2c", "c2p"],
                                                position_biased_input=False, num_attention_heads=2, **LAYERS, **c),
        "electra": lambda: T.ElectraConfig(embedding_size=32, num_attention_heads=2, **LAYERS, **c),
        "distilbert": lambda: T.DistilBertConfig(n_layers=2, dim=32, hidden_dim=64, n_heads=2,
                                                 max_position_embeddings=128, **c),
        "modernbert": lambda: T.ModernBertConfig(num_attention_heads=2, global_attn_every_n_layers=1,
                                                 local_attention=16, classifier_pooling="mean",
                                                 cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                                 bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                                 **LAYERS, **c),
    }[name]()


DECODERS = ("qwen2", "qwen3", "gemma2", "phi3", "gpt_neox", "opt")
ENCODERS = ("deberta-v2", "electra", "distilbert", "modernbert")


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("name", DECODERS + ENCODERS)
def test_family_scores_equal_transformers(name, k, corpus, tmp_path):
    encoder = name in ENCODERS
    tok = family_tokenizer("bert" if encoder else "gpt2", corpus)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config((_encoder if encoder else _decoder)(name, tok, k))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith(("score", "classifier")):
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval(), AutoTokenizer.from_pretrained(
        tmp_path)
    reward = load_reward(str(tmp_path), device="cpu")
    types = {"return_token_type_ids": True} if getattr(model.config, "type_vocab_size", 0) > 1 else {}
    prompts = [""] * len(TEXTS) + [p for p, _ in PAIRS]
    responses = TEXTS + [r for _, r in PAIRS]
    with torch.no_grad():
        expected = torch.stack([
            model(**tok(*((p, r) if p and encoder else (p + r,)), return_tensors="pt", **types)).logits[0]
            for p, r in zip(prompts, responses)])
    single = torch.stack([reward.score([p], [r]).reshape(-1) for p, r in zip(prompts, responses)])
    assert torch.allclose(single, expected, atol=1e-5), (name, k)
    reward.batch_size = 16
    assert torch.allclose(reward.score(prompts, responses).reshape(len(prompts), -1), expected, atol=1e-5)
