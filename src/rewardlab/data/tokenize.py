"""Turn (prompt, response) into token ids for a reward model, with counted truncation (DESIGN §2).

Rendering: conversational input goes through the tokenizer's chat template (``add_generation_prompt`` for the prompt
part); a tokenizer without one uses :data:`DEFAULT_CHAT_TEMPLATE`. Plain text is encoded as a text pair
``(prompt, response)`` with the tokenizer's own special tokens (``[CLS] p [SEP] r [SEP]`` for BERT-style encoders,
``p r <eos>`` for the tiny tokenizer).

Truncation keeps the response and cuts the prompt **from the left**; a response that alone exceeds the budget is cut
at its end (``overlong="truncate"``) or the item is dropped (``overlong="drop"``). Every truncation and drop is
counted in :class:`TruncationStats`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rewardlab.data.records import Prompt, Response

DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
OVERLONG = ("truncate", "drop")


@dataclass
class TruncationStats:
    """Counts of what tokenization did to the data; printed and stored in run metadata, never silent."""

    items: int = 0
    prompt_truncated: int = 0
    response_truncated: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.items} items: {self.prompt_truncated} prompts left-truncated, "
            f"{self.response_truncated} responses cut at the end, {self.dropped} dropped"
        )


def _chat_template(tokenizer) -> str:
    return getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE


def render(tokenizer, prompt: Prompt, response: Response) -> tuple[str, str, bool]:
    """Return ``(prompt_text, response_text, templated)``.

    ``templated`` is True when a chat template produced the text (it then carries its own special tokens, so the
    encoder must not add more).
    """
    if isinstance(response, str) and isinstance(prompt, str):
        return prompt, response, False
    messages_prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    messages_resp = [{"role": "assistant", "content": response}] if isinstance(response, str) else list(response)
    template = _chat_template(tokenizer)
    full = tokenizer.apply_chat_template(messages_prompt + messages_resp, chat_template=template, tokenize=False)
    if not messages_prompt:
        return "", full, True
    head = tokenizer.apply_chat_template(
        messages_prompt, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    if not full.startswith(head):  # templates that rewrite earlier turns: fall back to the turn-less prompt
        head = tokenizer.apply_chat_template(messages_prompt, chat_template=template, tokenize=False)
    if not full.startswith(head):
        return "", full, True
    return head, full[len(head) :], True


class PairEncoder:
    """Encodes (prompt, response) items to ids under a token budget; holds the running :class:`TruncationStats`."""

    def __init__(self, tokenizer, max_length: int = 512, overlong: str = "truncate"):
        if overlong not in OVERLONG:
            raise ValueError(f"overlong must be one of {OVERLONG}, got {overlong!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.overlong = overlong
        self.stats = TruncationStats()
        self._single = _special_layout(tokenizer, pair=False)
        self._pair = _special_layout(tokenizer, pair=True)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _layout(self, templated: bool, with_prompt: bool) -> tuple[list[int], list[int], list[int]]:
        if templated:  # the chat template already wrote the special tokens into the text
            return [], [], []
        return self._pair if with_prompt else self._single

    def encode(self, prompt: Prompt, response: Response) -> list[int] | None:
        """Token ids for one item, or None if it was dropped as overlong."""
        p_text, r_text, templated = render(self.tokenizer, prompt, response)
        p_ids, r_ids = self._ids(p_text), self._ids(r_text)
        self.stats.items += 1
        if p_ids:
            start, mid, end = self._layout(templated, True)
            room = self.max_length - len(start) - len(mid) - len(end) - len(r_ids)
            if room >= len(p_ids):
                return start + p_ids + mid + r_ids + end
            if room > 0:
                self.stats.prompt_truncated += 1
                return start + p_ids[len(p_ids) - room :] + mid + r_ids + end
        start, _, end = self._layout(templated, False)
        budget = self.max_length - len(start) - len(end)
        if len(r_ids) > budget:
            if self.overlong == "drop":
                self.stats.dropped += 1
                return None
            self.stats.response_truncated += 1
            r_ids = r_ids[:budget]
        if p_ids:  # no room left for any of the prompt
            self.stats.prompt_truncated += 1
        return start + r_ids + end


def _special_layout(tokenizer, pair: bool) -> tuple[list[int], list[int], list[int]]:
    """The special ids a tokenizer puts before, between and after its sequences, found by probing it.

    Encodes a probe with and without special tokens and reads off what was added, so any tokenizer works without
    knowing its template (``[CLS] a [SEP] b [SEP]``, ``<s> a </s></s> b </s>``, ``a b <eos>``, or nothing).
    """
    a = tokenizer("a", add_special_tokens=False)["input_ids"]
    b = tokenizer("b", add_special_tokens=False)["input_ids"]
    if pair:
        full = tokenizer("a", "b", add_special_tokens=True)["input_ids"]
        for i in range(len(full) - len(a) + 1):
            if full[i : i + len(a)] == a:
                rest = full[i + len(a) :]
                for j in range(len(rest) - len(b) + 1):
                    if rest[j : j + len(b)] == b:
                        return full[:i], rest[:j], rest[j + len(b) :]
        raise ValueError("could not find the pair layout of this tokenizer")
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(a) + 1):
        if full[i : i + len(a)] == a:
            return full[:i], [], full[i + len(a) :]
    raise ValueError("could not find the special-token layout of this tokenizer")


def encode(tokenizer, prompt: Prompt, response: Response, max_length: int = 512, overlong: str = "truncate",
           stats: TruncationStats | None = None) -> list[int] | None:
    """One-off encoding of a single item (see :class:`PairEncoder` for batches)."""
    enc = PairEncoder(tokenizer, max_length=max_length, overlong=overlong)
    if stats is not None:
        enc.stats = stats
    return enc.encode(prompt, response)
