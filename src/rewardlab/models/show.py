"""What a model is fed (``rewardlab data show``): each item of a data file rendered as the model renders it, special
tokens included, with its token count: :func:`show_rendering`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RenderedItem:
    source: str  # FILE:LINE of the row
    tag: str  # which response of the row (chosen, rejected, ...)
    tokens: int
    cut: list[str]  # the truncation counts this item raised (empty: kept whole)
    text: str | None  # the decoded ids, special tokens included (None: the item was dropped)


@dataclass
class Rendering:
    decoder: bool  # a decoder (else an encoder) model
    max_length: int  # the token budget
    template: str  # where the chat template comes from: "from FILE", "of the tokenizer" or "default"
    appends_eos: bool  # an eos is appended to plain text
    items: Iterator[RenderedItem]  # lazy: the data file is read while they are iterated


def show_rendering(file: Path, model: str, *, n: int = 3, split: str | None = None, max_length: int | None = None,
                   chat_template: Path | None = None) -> Rendering:
    """How ``model`` (a rewardlab checkpoint, a transformers/OpenRLHF reward model or a base model directory) renders
    the items of the first ``n`` rows of ``file``; ``max_length`` defaults to the model's budget, ``chat_template``
    (a Jinja file) replaces the tokenizer's. A conversation the chat template refuses raises ``FILE:LINE: field``."""
    from rewardlab.data.tokenize import PairEncoder
    from rewardlab.models.checkpoint import model_rendering

    template = chat_template.read_text() if chat_template else None
    tokenizer, rendering, budget = model_rendering(model, chat_template=template)
    enc = PairEncoder(tokenizer, max_length=max_length or budget, rendering=rendering)
    source = f"from {chat_template}" if template else "of the tokenizer" if tokenizer.chat_template else "default"
    return Rendering(bool(rendering.decoder), enc.max_length, source, rendering.append_eos is not None,
                     _items(file, n, split, enc, tokenizer))


def _items(file: Path, n: int, split: str | None, enc, tokenizer) -> Iterator[RenderedItem]:
    from rewardlab.data.load import load_rows
    from rewardlab.data.records import row_items
    from rewardlab.data.tokenize import ChatTemplateError

    for row in load_rows(file, split=split)[:n]:
        for tag, response in row_items(row):
            before = enc.stats.as_dict()
            try:
                ids = enc.encode(row.prompt, response)
            except ChatTemplateError as e:
                raise ChatTemplateError(e.reason, f"{row.source}: field '{tag}': ") from None
            cut = [k for k, v in enc.stats.as_dict().items() if k != "items" and v > before[k]]
            text = tokenizer.decode(ids, skip_special_tokens=False) if ids is not None else None
            yield RenderedItem(row.source, tag, len(ids) if ids is not None else 0, cut, text)
