"""Tiny models and tokenizers built from config — for tests, examples and the lab (no model hub needed)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model, PreTrainedTokenizerFast

from rewardlab.models.reward_model import RewardModel

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}

# A minimal chat template (jinja) so conversational rows render without a pretrained tokenizer.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` with pad/eos/bos/unk tokens and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    eos = SPECIAL_TOKENS["eos_token"]
    # Like most causal-LM reward models, end every scored sequence with eos (its hidden state is what the head reads).
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A $B:1 {eos}:1", special_tokens=[(eos, tok.token_to_id(eos))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def tiny_gpt2_config(
    tokenizer: PreTrainedTokenizerFast, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 256
) -> GPT2Config:
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_causal_lm(tokenizer: PreTrainedTokenizerFast, seed: int = 0, **config_kwargs) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2-config causal LM sized for CPU (default 2 layers, 64 dims)."""
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_gpt2_config(tokenizer, **config_kwargs)).eval()


def tiny_reward_model(
    tokenizer: PreTrainedTokenizerFast, num_outputs: int = 1, seed: int = 0, **config_kwargs
) -> RewardModel:
    """A randomly initialised tiny GPT-2 backbone with a linear reward head."""
    torch.manual_seed(seed)
    backbone = GPT2Model(tiny_gpt2_config(tokenizer, **config_kwargs))
    return RewardModel(backbone, num_outputs=num_outputs, pooling="last").eval()
