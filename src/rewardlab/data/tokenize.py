"""Turn (prompt, response) into token ids for a reward model, with counted truncation.

Rendering is a property of the model (:class:`Rendering`, stored in ``rewardlab.json``), applied the same way at
train, score, eval and serve time:

- **Conversations** go through the chat template (the tokenizer's own, a ``--chat-template`` override, or
  :data:`DEFAULT_CHAT_TEMPLATE` when it has none); ``add_generation_prompt`` renders the prompt part. The model's
  start tokens (bos, ``[CLS]``) are added only when the rendered text does not already begin with them (Llama-3-style
  templates write ``<|begin_of_text|>`` themselves: no second bos); encoders also get their end tokens (``[SEP]``).
- **Plain text on a decoder** is one sequence, as TRL's RewardTrainer builds it: ``start + prompt + response +
  end``, plus eos when the tokenizer has one and the layout does not already end with it (TRL appends eos to
  non-conversational rows). No separator is put between prompt and response (a Llama-3 tokenizer's text-pair
  template would insert a second bos there).
- **Plain text on an encoder** is the tokenizer's text pair, ``[CLS] p [SEP] r [SEP]`` (``<s> p </s></s> r </s>``);
  the reward model derives ``token_type_ids`` from the first separator (see ``models.reward_model``).

Truncation keeps the response and cuts the prompt **from the left**; a response that alone exceeds the budget is cut
at its end (``overlong="truncate"``) or the item is dropped (``overlong="drop"``). An already-rendered full text
without a prompt split (OpenRLHF ``query``, vLLM ``input``) keeps its **end**: it is cut from the left. Every
truncation and drop is counted in :class:`TruncationStats`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rewardlab.data.records import Prompt, Response, Row, row_items
from rewardlab.errors import UserError

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


class ChatTemplateError(UserError):
    """The chat template refused a conversation (``raise_exception`` in the template: a system turn it does not
    support, roles that do not alternate, ...). ``reason`` is the template's message."""

    def __init__(self, reason: str, where: str = ""):
        super().__init__(f"{where}the chat template refused this conversation: {reason}")
        self.reason = reason


def template_problems(encoder: PairEncoder, rows: list[Row]) -> list[str]:
    """``FILE:LINE: field 'F': ...`` for every item of ``rows`` whose conversation ``encoder``'s chat template
    refuses (rendering only, no tokenization): where a :class:`ChatTemplateError` from a batch came from."""
    problems = []
    for row in rows:
        for tag, response in row_items(row):
            try:
                encoder.render(row.prompt, response)
            except ChatTemplateError as e:
                problems.append(f"{row.source}: field '{tag}': the chat template refused this conversation: "
                                f"{e.reason}")
    return problems


def _apply(tokenizer, messages: list, template: str, **kwargs) -> str:
    import jinja2

    try:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)
    except jinja2.TemplateError as e:
        raise ChatTemplateError(str(e)) from None


def _chat_template(tokenizer) -> str:
    return getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE


def render(tokenizer, prompt: Prompt, response: Response, chat_template: str | None = None) -> tuple[str, str, bool]:
    """Return ``(prompt_text, response_text, templated)``; ``templated`` is True when a chat template produced the
    text (it then carries the template's own special tokens)."""
    if isinstance(response, str) and isinstance(prompt, str):
        return prompt, response, False
    if isinstance(prompt, str):
        messages_prompt = [{"role": "user", "content": prompt}] if prompt else []  # "" = implicit prompt: no turn
    else:
        messages_prompt = list(prompt)
    messages_resp = [{"role": "assistant", "content": response}] if isinstance(response, str) else list(response)
    template = chat_template or _chat_template(tokenizer)
    full = _apply(tokenizer, messages_prompt + messages_resp, template)
    if not messages_prompt:
        return "", full, True
    head = _apply(tokenizer, messages_prompt, template, add_generation_prompt=True)
    if not full.startswith(head):  # templates that rewrite earlier turns: fall back to the turn-less prompt
        head = _apply(tokenizer, messages_prompt, template)
    if not full.startswith(head):
        return "", full, True
    return head, full[len(head) :], True


@dataclass
class Rendering:
    """How a model's inputs are rendered to ids: recorded in ``rewardlab.json`` (see the module docstring).

    ``single``/``pair`` are the special ids the tokenizer puts around one text / between and around a text pair
    (``(start, end)`` and ``(start, mid, end)``), probed once from the tokenizer. ``append_eos`` is the eos id added
    after plain decoder text (None: not added). ``chat_template`` is an override of the tokenizer's template.
    """

    decoder: bool
    single: tuple[list[int], list[int]]
    pair: tuple[list[int], list[int], list[int]]
    append_eos: int | None = None
    chat_template: str | None = None
    joint: bool = False
    eos_last: bool = False

    @classmethod
    def for_tokenizer(cls, tokenizer, decoder: bool | None = None, chat_template: str | None = None,
                      eos: bool = True, joint: bool | None = None) -> Rendering:
        """Probe ``tokenizer``. ``decoder=None`` guesses from the tokenizer (encoder tokenizers have a CLS token).
        ``eos=False`` renders plain decoder text exactly as ``tokenizer(text)`` does (imported models: what
        transformers' pipeline feeds them), ``eos=True`` appends eos as TRL's RewardTrainer does.

        ``joint`` (set with ``eos=False``): one sequence is tokenized as one text and split into prompt and response
        ids at the prompt's last character, as TRL and transformers tokenize it. SentencePiece-style tokenizers
        (Llama-2, Mistral) give a response tokenized on its own a leading ``▁`` it does not have after
        ``[/INST]``; checkpoints without the key keep the piecewise tokenization they were trained with.
        ``eos_last``: templated text also ends with eos (``append_eos``) when it does not already (OpenRLHF reward
        models, which read their reward at an eos they always append)."""
        if decoder is None:
            decoder = getattr(tokenizer, "cls_token", None) is None
        start, _, end = _special_layout(tokenizer, pair=False)
        pair = _special_layout(tokenizer, pair=True)
        eos_id = getattr(tokenizer, "eos_token_id", None) if eos else None
        append = eos_id if decoder and eos_id is not None and not (end and end[-1] == eos_id) else None
        return cls(bool(decoder), (start, end), pair, append, chat_template, joint=not eos if joint is None else joint)

    def to_dict(self) -> dict:
        d = {"decoder": self.decoder, "single": list(map(list, self.single)), "pair": list(map(list, self.pair)),
             "append_eos": self.append_eos, "chat_template": self.chat_template}
        return d | {k: True for k in ("joint", "eos_last") if getattr(self, k)}

    @classmethod
    def from_dict(cls, d: dict) -> Rendering:
        return cls(bool(d["decoder"]), tuple(map(list, d["single"])), tuple(map(list, d["pair"])),
                   d.get("append_eos"), d.get("chat_template"), bool(d.get("joint")), bool(d.get("eos_last")))

    def layout(self, with_prompt: bool) -> tuple[list[int], list[int], list[int]]:
        """``(start, mid, end)`` special ids around plain text (templated text: see :meth:`peel`)."""
        start, end = self.single
        if not self.decoder and with_prompt:
            return self.pair
        if self.decoder and self.append_eos is not None:
            end = end + [self.append_eos]
        return start, [], end

    def peel(self, p_ids: list[int], r_ids: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
        """``(start, p_ids, r_ids, end)`` for templated text: the model's start tokens (bos, ``[CLS]``) and, for
        encoders, its end tokens (``[SEP]``) are taken out of the text when it already carries them and added when
        it does not — so they are never doubled and never lost to truncation."""
        start, end = self.single
        first = p_ids if p_ids else r_ids
        if start and first[: len(start)] == start:
            first = first[len(start):]
            p_ids, r_ids = (first, r_ids) if p_ids else (p_ids, first)
        if self.decoder:
            return start, p_ids, r_ids, []
        if end and r_ids[-len(end):] == end:
            r_ids = r_ids[: -len(end)]
        return start, p_ids, r_ids, end


class PairEncoder:
    """Encodes (prompt, response) items to ids under a token budget; holds the running :class:`TruncationStats`."""

    def __init__(self, tokenizer, max_length: int = 512, overlong: str = "truncate",
                 rendering: Rendering | None = None):
        if overlong not in OVERLONG:
            raise ValueError(f"overlong must be one of {OVERLONG}, got {overlong!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.overlong = overlong
        self.stats = TruncationStats()
        self.rendering = rendering or Rendering.for_tokenizer(tokenizer)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _split_ids(self, p_text: str, r_text: str) -> tuple[list[int], list[int]]:
        """Prompt and response ids of one sequence: with a joint rendering, the ids of ``p_text + r_text`` split
        where the response's characters start (a token across the boundary stays with the prompt)."""
        if not (self.rendering.joint and p_text and r_text and getattr(self.tokenizer, "is_fast", False)):
            return self._ids(p_text), self._ids(r_text)
        enc = self.tokenizer(p_text + r_text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        cut = next((i for i, (begin, _) in enumerate(offsets) if begin >= len(p_text)), len(ids))
        return ids[:cut], ids[cut:]

    def render(self, prompt: Prompt, response: Response) -> tuple[str, str, bool]:
        return render(self.tokenizer, prompt, response, self.rendering.chat_template)

    def encode(self, prompt: Prompt, response: Response) -> list[int] | None:
        """Token ids for one item, or None if it was dropped as overlong."""
        p_text, r_text, templated = self.render(prompt, response)
        if templated or self.rendering.decoder:  # one sequence
            p_ids, r_ids = self._split_ids(p_text, r_text)
        else:  # an encoder's text pair: two sequences, tokenized apart as tokenizer(p, r) does
            p_ids, r_ids = self._ids(p_text), self._ids(r_text)
        return self._fit(p_ids, r_ids, templated, keep="start")

    def encode_text(self, text: str, prompt: str | None = None) -> list[int]:
        """Ids for an already-rendered full text (no chat template applied). When ``prompt`` is a prefix of
        ``text`` the two are split there and the prompt is cut from the left; otherwise the text is one response
        whose **end** is kept (cut from the left) when it exceeds the budget."""
        if prompt and text.startswith(prompt):
            p_ids, r_ids = self._split_ids(prompt, text[len(prompt):])
        else:
            p_ids, r_ids = [], self._ids(text)
        return self._fit(p_ids, r_ids, templated=False, keep="end", full_text=True)

    def _fit(self, p_ids: list[int], r_ids: list[int], templated: bool, keep: str,
             full_text: bool = False) -> list[int] | None:
        self.stats.items += 1
        if templated or full_text:  # one rendered sequence: the model's special tokens once, around it
            start, p_ids, r_ids, end = self.rendering.peel(p_ids, r_ids)
            eos = self.rendering.append_eos
            if self.rendering.eos_last and eos is not None and r_ids[-1:] != [eos]:
                end = end + [eos]
            if full_text:
                start, _, end = self.rendering.layout(with_prompt=False)
                r_ids = r_ids[: -len(end)] if end and r_ids[-len(end):] == end else r_ids
            mid: list[int] = []
        else:
            start, mid, end = self.rendering.layout(with_prompt=bool(p_ids))
        if p_ids:
            room = self.max_length - len(start) - len(mid) - len(end) - len(r_ids)
            if room >= len(p_ids):
                return start + p_ids + mid + r_ids + end
            if room > 0:
                self.stats.prompt_truncated += 1
                return start + p_ids[len(p_ids) - room :] + mid + r_ids + end
            self.stats.prompt_truncated += 1  # no room left for any of the prompt
            if not (templated or full_text):
                start, _, end = self.rendering.layout(with_prompt=False)
        budget = self.max_length - len(start) - len(end)
        if len(r_ids) > budget:
            if self.overlong == "drop" and keep == "start":
                self.stats.dropped += 1
                return None
            self.stats.response_truncated += 1
            r_ids = r_ids[:budget] if keep == "start" else r_ids[len(r_ids) - budget :]
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
           stats: TruncationStats | None = None, rendering: Rendering | None = None) -> list[int] | None:
    """One-off encoding of a single item (see :class:`PairEncoder` for batches)."""
    enc = PairEncoder(tokenizer, max_length=max_length, overlong=overlong, rendering=rendering)
    if stats is not None:
        enc.stats = stats
    return enc.encode(prompt, response)
