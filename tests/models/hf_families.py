"""Tiny transformers reward models of five families, built from config and saved with ``save_pretrained`` — the
directories a user brings from the hub (GPT-2, Llama-3-style, Mistral-style, BERT and RoBERTa classifiers), with
tokenizers that reproduce each family's special-token layout (Mistral: a SentencePiece-style ``Metaspace``
tokenizer, ``▁`` prepended to the first word only, as transformers converts Llama-2/Mistral tokenizers)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    RobertaConfig,
)

FAMILIES = ("gpt2", "llama", "mistral", "bert", "roberta")
LLAMA_TEMPLATE = (
    "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
MISTRAL_TEMPLATE = (  # Mistral-Instruct v0.1's: the reply follows [/INST] with no space
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def _bpe(corpus, specials: list[str], vocab: int = 160) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def family_tokenizer(family: str, corpus) -> PreTrainedTokenizerFast:
    if family == "gpt2":
        from rewardlab.models.tiny import train_tiny_tokenizer

        return train_tiny_tokenizer(corpus, vocab_size=160)
    if family == "llama":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
        tok = _bpe(corpus, specials)
        bos = specials[0]
        # Llama-3's post-processor: bos before each sequence -- a text pair gets a second bos before the second text
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, tok.token_to_id(bos))])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>")
        fast.chat_template = LLAMA_TEMPLATE
        return fast
    if family == "mistral":
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
        tok.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
            vocab_size=200, special_tokens=["<unk>", "<s>", "</s>", "[INST]", "[/INST]"], show_progress=False))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", tok.token_to_id("<s>"))])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        fast.chat_template = MISTRAL_TEMPLATE
        return fast
    if family == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(corpus, trainer=trainers.WordPieceTrainer(vocab_size=160, special_tokens=specials,
                                                                            show_progress=False))
        ids = [(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=ids)
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]")
    if family == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids: <s>=0, <pad>=1 (= padding_idx)
        tok = _bpe(corpus, specials)
        ids = [(t, tok.token_to_id(t)) for t in ("<s>", "</s>")]
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=ids)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                       unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    raise ValueError(family)


def family_config(family: str, tok: PreTrainedTokenizerFast, num_labels: int = 1):
    common = dict(vocab_size=len(tok), num_labels=num_labels)
    if family == "gpt2":
        return GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=128, pad_token_id=tok.pad_token_id,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **common)
    if family == "llama":
        return LlamaConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, **common)
    if family == "mistral":  # no pad token: config.pad_token_id None, the tokenizer has none either
        return MistralConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, **common)
    layers = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2)
    if family == "bert":
        return BertConfig(max_position_embeddings=128, pad_token_id=tok.pad_token_id, **layers, **common)
    return RobertaConfig(max_position_embeddings=130, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, type_vocab_size=1, **layers, **common)


def save_family(family: str, corpus, out: Path, num_labels: int = 1, seed: int = 0):
    """Save a random tiny ``*ForSequenceClassification`` of ``family`` (weights + tokenizer) to ``out``; returns
    ``(model, tokenizer)`` as transformers loads them back from ``out`` (the reference)."""
    tok = family_tokenizer(family, corpus)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(family_config(family, tok, num_labels))
    with torch.no_grad():  # a visible head: random init of `score` is small for some families
        for name, p in model.named_parameters():
            if name.startswith(("score", "classifier")):
                p.normal_(0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    from transformers import AutoTokenizer

    return AutoModelForSequenceClassification.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)


def save_openrlhf(corpus, out: Path, mean: float = 0.3, std: float = 2.0, seed: int = 3):
    """OpenRLHF's ``train_rm`` layout at ``out``: a tiny Llama base model under its prefix (``model.``) + a bias-free
    ``value_head``, ``architectures: [RewardModel]`` and ``normalize_reward`` with ``mean``/``std`` in config.json;
    returns ``(tokenizer, config, base model, head weight [1, hidden])``."""
    import json

    from safetensors.torch import save_file
    from transformers import LlamaModel

    tok = family_tokenizer("llama", corpus)
    config = family_config("llama", tok)
    torch.manual_seed(seed)
    base = LlamaModel(config).eval()
    head = torch.randn(1, config.hidden_size)
    state = {f"model.{k}": v for k, v in base.state_dict().items()} | {"value_head.weight": head}
    out.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    cfg = config.to_dict() | {"architectures": ["RewardModel"], "normalize_reward": True, "mean": mean, "std": std}
    (out / "config.json").write_text(json.dumps(cfg))
    tok.save_pretrained(out)
    return tok, config, base, head
