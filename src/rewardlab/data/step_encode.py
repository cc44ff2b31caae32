"""Token ids for a prompt and its steps, with the positions a process reward model is read at.

The layout follows TRL's ``PRMTrainer.tokenize_row`` (``trl/experimental/prm/prm_trainer.py``), so PRMs trained by
TRL score here as they were trained and rewardlab PRMs train on what TRL would feed them:

- the prompt and every step are tokenized **separately** (``add_special_tokens=False``) and the ids concatenated —
  not the joined text, so a BPE merge never straddles a step boundary;
- each step is followed by the ids of ``separator`` (TRL's ``step_separator``, default ``"\\n"``), and the step's
  label sits on the **last token of step + separator**: that is where the model is read (:attr:`EncodedSteps.ends`);
- decoders get ``bos`` before the prompt when the tokenizer has one (TRL); encoders get their own start and end
  tokens (``[CLS]`` … ``[SEP]``), as their tokenizers add them;
- nothing sits between prompt and first step (TRL; ``prompt_separator`` adds one, e.g. ProcessBench's TRL script
  puts ``"\\n"`` there).

A conversational prompt is rendered by the chat template with the generation prompt (the tokenizer's template, the
model's recorded override, or :data:`~rewardlab.data.tokenize.DEFAULT_CHAT_TEMPLATE`).

**Truncation** (TRL cuts the ids at ``max_length`` silently, so the last labels land mid-step): when the ids exceed
``max_length``, the prompt is cut from the left first (the repository-wide rule: keep the response); when the steps
alone still do not fit, the **trailing whole steps** that do not fit are dropped — they get no score and no label —
and only when not even the first step fits is it cut at its end (its score is then read at the last kept token).
Everything is counted in :class:`StepTruncation`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rewardlab.data.records import Prompt
from rewardlab.data.tokenize import DEFAULT_CHAT_TEMPLATE
from rewardlab.errors import UserError

DEFAULT_STEP_SEPARATOR = "\n"  # TRL PRMConfig.step_separator


@dataclass(frozen=True)
class StepFormat:
    """How steps are laid out (recorded in a PRM's ``rewardlab.json`` under ``steps``)."""

    separator: str = DEFAULT_STEP_SEPARATOR
    prompt_separator: str = ""

    def __post_init__(self) -> None:
        if not self.separator:
            raise ValueError("the step separator must be a non-empty string (it marks where each step is scored)")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> StepFormat:
        d = d or {}
        return cls(d.get("separator", DEFAULT_STEP_SEPARATOR), d.get("prompt_separator", ""))


@dataclass
class StepTruncation:
    """Counts of what encoding did to the data; printed and stored in run metadata, never silent."""

    items: int = 0
    steps: int = 0
    prompt_truncated: int = 0
    items_with_dropped_steps: int = 0
    steps_dropped: int = 0
    steps_cut: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.items} items, {self.steps} steps: {self.prompt_truncated} prompts left-truncated, "
                f"{self.steps_dropped} steps dropped beyond the budget (in {self.items_with_dropped_steps} items), "
                f"{self.steps_cut} steps cut at the end")


@dataclass
class EncodedSteps:
    """``ids`` of one item; ``ends[j]`` = index in ``ids`` where step j is read (one per *kept* step:
    ``len(ends) <= n_steps``, the difference was dropped by truncation)."""

    ids: list[int]
    ends: list[int]
    n_steps: int


@dataclass
class StepEncoder:
    """Encodes ``(prompt, steps)`` under a token budget (see the module docstring); keeps running counts."""

    tokenizer: object
    max_length: int = 1024
    fmt: StepFormat = field(default_factory=StepFormat)
    decoder: bool = True
    chat_template: str | None = None
    stats: StepTruncation = field(default_factory=StepTruncation)

    def __post_init__(self) -> None:
        tok = self.tokenizer
        self._sep = self._ids(self.fmt.separator)
        self._prompt_sep = self._ids(self.fmt.prompt_separator)
        if not self._sep:
            raise UserError(f"the step separator {self.fmt.separator!r} tokenizes to no ids with this tokenizer (it "
                            "drops it, e.g. a WordPiece tokenizer drops '\\n'): choose one it keeps with "
                            "--step-separator, e.g. ' ;'")
        if self.decoder:
            bos = getattr(tok, "bos_token_id", None)
            self._start, self._end = ([bos] if bos is not None else []), []
        else:
            from rewardlab.data.tokenize import _special_layout

            self._start, _, self._end = _special_layout(tok, pair=False)
        if self.max_length < len(self._start) + len(self._end) + 1:
            raise ValueError(f"max_length {self.max_length} leaves no room for any token")

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Ids of the prompt (+ ``prompt_separator``), without the model's start tokens."""
        if isinstance(prompt, str):
            text = prompt
        else:
            template = self.chat_template or getattr(self.tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
            text = self.tokenizer.apply_chat_template(list(prompt), chat_template=template, tokenize=False,
                                                      add_generation_prompt=True)
        ids = self._ids(text)
        if self._start and ids[: len(self._start)] == self._start:  # a template that writes bos itself
            ids = ids[len(self._start):]
        return ids + self._prompt_sep if text else []

    def encode(self, prompt: Prompt, steps: list[str]) -> EncodedSteps:
        """Ids and read positions of one item (``steps`` must be non-empty)."""
        if not steps:
            raise ValueError("an item needs at least one step")
        s = self.stats
        s.items += 1
        s.steps += len(steps)
        p_ids = self.prompt_ids(prompt)
        step_ids = [self._ids(x) + self._sep for x in steps]
        budget = self.max_length - len(self._start) - len(self._end)
        total = sum(map(len, step_ids))
        if len(p_ids) + total > budget and p_ids:
            s.prompt_truncated += 1
            room = max(0, budget - total)
            p_ids = p_ids[len(p_ids) - room:] if room else []
        kept, used = 0, len(p_ids)
        while kept < len(step_ids) and used + len(step_ids[kept]) <= budget:
            used += len(step_ids[kept])
            kept += 1
        if kept < len(step_ids):
            s.items_with_dropped_steps += 1
            if kept == 0:  # not even the first step fits: cut it (its score is read at the last kept token)
                step_ids = [step_ids[0][: budget - len(p_ids)]]
                kept = 1
                s.steps_cut += 1
            s.steps_dropped += len(steps) - kept
        ids, ends = self._start + p_ids, []
        for x in step_ids[:kept]:
            ids.extend(x)
            ends.append(len(ids) - 1)
        return EncodedSteps(ids + self._end, ends, len(steps))
