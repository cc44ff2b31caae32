"""Generative judges: any causal LM as a pairwise or pointwise judge, as a :class:`~rewardlab.rewards.base.Reward`.

The judge reads a prompt template (with an optional principle / rubric, as in RewardAnything and SALMON) and answers
with a verdict label. Two ways to read the verdict:

* ``verdict="logprobs"`` — from the next-token distribution at the start of the answer, over the verdict labels
  (``"A"``/``"B"`` pairwise, ``"Yes"``/``"No"`` pointwise): ``P(l) = exp(lp_l) / Σ_m exp(lp_m)`` (renormalized over
  the labels; the mass the labels got, ``Σ_m exp(lp_m)``, is reported). No text is parsed.
* ``verdict="generate"`` — the judge writes a reasoning trace of at most ``max_new_tokens`` tokens (RM-R1, Think-RM)
  ending in a final verdict ``[[A]]``; the last match of ``verdict_pattern`` decides (probability 1 for that label).
  An unparsable answer (e.g. the budget ran out mid-trace) is, by default (``on_unparsed="ask"``), followed by a
  second turn that asks for the verdict alone, read from the verdict-token probabilities; with ``"tie"`` it counts
  as a tie (uniform over the labels). Both are counted (``unparsed_rate``).

**Position bias** (pairwise). Each pair is judged in both orders: ``p₁ = P(A | a shown first)`` and
``p₂ = P(A | b shown first)``. The debiased probability is ``P(a ≻ b) = (p₁ + 1 − p₂) / 2``, so
``P(a ≻ b) + P(b ≻ a) = 1`` exactly. The pair is *swap-consistent* when both orders pick the same response strictly
(``p₁ > ½`` and ``p₂ < ½``, or ``p₁ < ½`` and ``p₂ > ½``); a tie in either order is not consistent. Position bias
= mean over orders of ``P(first shown wins) − ½``.

**Per-response rewards** (the Reward interface scores items one by one; a pairwise judge compares them):

* ``against="reference"``: ``r(x, y) = P(y ≻ ref(x))`` with a reference response per prompt (a fixed mapping or a
  callable, e.g. a reference policy's answer) — independent of the batch, like any reward model.
* ``against="others"``: items with the same prompt in one ``score`` call form a group; ``r_i = mean_{j≠i} P(y_i ≻
  y_j)`` (n(n−1)/2 pairs, each in both orders) — a relative reward, as in GRPO-style groups of samples or Pairwise-RL.
  It depends on which responses are scored together (by design); an item alone in its group gets 0.5.

Pointwise: ``r(x, y) = Σ_l P(l) · value_l`` (``Yes`` = 1, ``No`` = 0 by default: the probability of a "Yes").
Pointwise judges make good CGPO-style constraint judges in :class:`rewardlab.rewards.rules.Constrained`
(accept when ``P(Yes) > threshold``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response, prompt_key
from rewardlab.rewards.judge_backends import JudgeBackend, as_messages

PAIRWISE_TEMPLATE = (
    "You are an impartial judge. Compare two responses to the user's question and decide which one is better."
    "{principle}\n\n[Question]\n{prompt}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n{instruction}"
)
POINTWISE_TEMPLATE = (
    "You are an impartial judge. Decide whether the response answers the user's question well.{principle}\n\n"
    "[Question]\n{prompt}\n\n[Response]\n{response}\n\n{instruction}"
)
ANSWER_NOW = {"pairwise": "Which response is better? Answer with a single letter: A or B.",
              "pointwise": "Is the response good? Answer with a single word: Yes or No."}
REASON_FIRST = {"pairwise": "Think step by step, then end with your final verdict: [[A]] or [[B]].",
                "pointwise": "Think step by step, then end with your final verdict: [[Yes]] or [[No]]."}
DEFAULT_LABELS = {"pairwise": ("A", "B"), "pointwise": ("Yes", "No")}


@dataclass
class JudgeConfig:
    """How the judge is asked and read. ``labels[0]`` means "the first response wins" (pairwise) / the best rating
    (pointwise); ``values`` are the pointwise rewards of the labels (default 1, 0)."""

    mode: str = "pairwise"                 # "pairwise" | "pointwise"
    verdict: str = "logprobs"              # "logprobs" | "generate"
    principle: str | None = None           # rubric / principle text shown to the judge
    template: str | None = None            # str.format template: {prompt} {a} {b} | {response}, {principle}, ...
    labels: tuple[str, ...] | None = None
    values: tuple[float, ...] | None = None
    max_new_tokens: int = 256              # generation budget of a reasoning trace
    verdict_pattern: str = r"\[\[\s*({labels})\s*\]\]"
    on_unparsed: str = "ask"               # "ask" (a follow-up turn, verdict from logprobs) | "tie"
    against: str = "others"                # pairwise: "others" | "reference"
    swap: bool = True                      # pairwise: judge both orders and average
    chunk_size: int = 64                   # judge prompts per backend call (progress bar granularity)

    def __post_init__(self) -> None:
        if self.mode not in DEFAULT_LABELS:
            raise ValueError(f"mode must be pairwise or pointwise, got {self.mode!r}")
        if self.verdict not in ("logprobs", "generate"):
            raise ValueError(f"verdict must be logprobs or generate, got {self.verdict!r}")
        if self.on_unparsed not in ("ask", "tie"):
            raise ValueError(f"on_unparsed must be ask or tie, got {self.on_unparsed!r}")
        if self.against not in ("others", "reference"):
            raise ValueError(f"against must be others or reference, got {self.against!r}")
        self.labels = tuple(self.labels or DEFAULT_LABELS[self.mode])
        if self.mode == "pairwise" and len(self.labels) != 2:
            raise ValueError("a pairwise judge needs exactly two labels (first wins, second wins)")
        if self.values is None:
            self.values = tuple(1.0 - i / max(1, len(self.labels) - 1) for i in range(len(self.labels)))
        if len(self.values) != len(self.labels):
            raise ValueError("values must have one entry per label")


# ----------------------------------------------------------------------------------------------- pure functions


def label_probs(logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label log-probabilities ``[n, L]`` → (probabilities renormalized over the labels ``[n, L]``, label mass
    ``Σ_l exp(lp_l)`` ``[n]``). A row with no mass at all (every entry −inf) becomes uniform."""
    mass = logps.exp().sum(-1)
    probs = torch.softmax(logps, -1)
    uniform = torch.full_like(probs, 1.0 / logps.shape[-1])
    return torch.where(torch.isfinite(logps).any(-1, keepdim=True), probs, uniform), mass


def swap_average(p_first: torch.Tensor, p_second: torch.Tensor) -> torch.Tensor:
    """``P(a ≻ b) = (p₁ + 1 − p₂) / 2`` with ``p₁ = P(A | a shown first)``, ``p₂ = P(A | b shown first)``; ``[n]``."""
    return 0.5 * (p_first + 1.0 - p_second)


def swap_consistent(p_first: torch.Tensor, p_second: torch.Tensor) -> torch.Tensor:
    """Both orders pick the same response strictly: (p₁ > ½ and p₂ < ½) or (p₁ < ½ and p₂ > ½); bool ``[n]``."""
    return ((p_first > 0.5) & (p_second < 0.5)) | ((p_first < 0.5) & (p_second > 0.5))


def win_rate_rewards(p: torch.Tensor) -> torch.Tensor:
    """Per-response rewards from pairwise probabilities ``p[i, j] = P(y_i ≻ y_j)`` ``[n, n]`` (diagonal ignored):
    ``r_i = mean_{j≠i} p[i, j]``; ``[n]``. A single response gets 0.5."""
    n = p.shape[0]
    if n < 2:
        return torch.full((n,), 0.5)
    off = ~torch.eye(n, dtype=torch.bool)
    return (p * off).sum(1) / (n - 1)


def parse_verdict(text: str, labels: Sequence[str], pattern: str = JudgeConfig.verdict_pattern) -> int | None:
    """Index of the label in the *last* match of ``pattern`` (``{labels}`` is replaced by the escaped labels
    joined with ``|``), or None when nothing matches."""
    rx = re.compile(pattern.replace("{labels}", "|".join(re.escape(lbl) for lbl in labels)))
    matches = rx.findall(text)
    if not matches:
        return None
    last = matches[-1] if isinstance(matches[-1], str) else next(g for g in matches[-1] if g)
    return list(labels).index(last.strip()) if last.strip() in labels else None


def as_text(x: Prompt | Response) -> str:
    """A prompt/response as text for the judge prompt; a conversation becomes ``role: content`` lines."""
    return x if isinstance(x, str) else "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in x)


# ----------------------------------------------------------------------------------------------- the reward


@dataclass
class JudgeStats:
    """Running counts over every call (for reports): pairs judged in both orders, how many were consistent, the
    summed P(first shown wins), label mass, unparsed generations."""

    pairs: int = 0
    consistent: int = 0
    first_wins: float = 0.0
    orders: int = 0
    prompts: int = 0
    mass: float = 0.0
    unparsed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"pairs_both_orders": self.pairs, "judge_prompts": self.prompts,
                "swap_consistency": self.consistent / self.pairs if self.pairs else None,
                "position_bias": self.first_wins / self.orders - 0.5 if self.orders else None,
                "label_mass": self.mass / self.prompts if self.prompts else None,
                "unparsed_rate": self.unparsed / self.prompts if self.prompts else None} | self.extra


@dataclass
class PairVerdicts:
    """Judgements of items ``(x, a, b)``: ``p`` = P(a ≻ b) (debiased when both orders were judged), ``p_first`` =
    P(A | a shown first), ``p_second`` = P(A | b shown first) (None without swapping), ``consistent``."""

    p: torch.Tensor
    p_first: torch.Tensor
    p_second: torch.Tensor | None
    consistent: torch.Tensor | None


Reference = Mapping[str, Response] | Callable[[Prompt], Response] | str


class JudgeReward:
    """A causal-LM judge as a Reward (see the module docstring). ``references`` (pairwise, ``against="reference"``):
    a mapping from prompt (text, or JSON of a conversation) to a reference response, a callable, or one fixed text."""

    num_outputs = 1

    def __init__(self, backend: JudgeBackend, config: JudgeConfig | None = None,
                 references: Reference | None = None, name: str | None = None, progress: bool = True):
        self.backend = backend
        self.config = config or JudgeConfig()
        self.references = references
        self.name = name or f"judge:{getattr(backend, 'name', 'backend')}:{self.config.mode}"
        self.progress = progress
        self.stats = JudgeStats()
        if self.config.mode == "pairwise" and self.config.against == "reference" and references is None:
            raise ValueError("against='reference' needs references")

    @property
    def batch_invariant(self) -> bool:
        """Pairwise against the others compares the items of one ``score`` call: the server must not merge
        requests for it (and one sample per request, as OpenRLHF sends, always scores 0.5)."""
        return not (self.config.mode == "pairwise" and self.config.against == "others")

    def report(self) -> dict[str, Any]:
        """Judge statistics so far (swap-consistency, position bias, label mass, unparsed rate) + the backend's
        counters (truncated prompts, requests, cache hits)."""
        return self.stats.as_dict() | {"backend": dict(getattr(self.backend, "stats", {}) or {})}

    # ------------------------------------------------------------------ prompts
    def _fill(self, **fields: str) -> str:
        cfg = self.config
        principle = f"\n\nJudge by this principle: {cfg.principle}" if cfg.principle else ""
        instruction = (ANSWER_NOW if cfg.verdict == "logprobs" else REASON_FIRST)[cfg.mode]
        template = cfg.template or (PAIRWISE_TEMPLATE if cfg.mode == "pairwise" else POINTWISE_TEMPLATE)
        return template.format(principle=principle, instruction=instruction, **fields)

    def pairwise_prompt(self, prompt: Prompt, a: Response, b: Response) -> list[dict[str, str]]:
        return [{"role": "user", "content": self._fill(prompt=as_text(prompt), a=as_text(a), b=as_text(b))}]

    def pointwise_prompt(self, prompt: Prompt, response: Response) -> list[dict[str, str]]:
        return [{"role": "user", "content": self._fill(prompt=as_text(prompt), response=as_text(response))}]

    # ------------------------------------------------------------------ verdicts
    def verdict_probs(self, judge_prompts: Sequence[Prompt]) -> torch.Tensor:
        """``[n, L]`` probabilities over the labels for each judge prompt (backend calls in chunks, with a progress
        bar when there is more than one chunk)."""
        cfg = self.config
        out = []
        with progress_bar(self.progress and len(judge_prompts) > cfg.chunk_size, f"judging ({self.name})",
                       len(judge_prompts)) as advance:
            for s in range(0, len(judge_prompts), cfg.chunk_size):
                chunk = list(judge_prompts[s : s + cfg.chunk_size])
                if cfg.verdict == "logprobs":
                    probs, mass = label_probs(self.backend.label_logprobs(chunk, cfg.labels))
                    self.stats.mass += float(mass.sum())
                else:
                    probs = self._generated_verdicts(chunk)
                self.stats.prompts += len(chunk)
                out.append(probs.float())
                advance(len(chunk))
        return torch.cat(out) if out else torch.zeros((0, len(cfg.labels)))

    def _generated_verdicts(self, chunk: list[Prompt]) -> torch.Tensor:
        cfg = self.config
        probs = torch.full((len(chunk), len(cfg.labels)), 1.0 / len(cfg.labels))
        follow_up = []
        for i, text in enumerate(self.backend.generate(chunk, cfg.max_new_tokens)):
            k = parse_verdict(text, cfg.labels, cfg.verdict_pattern)
            if k is None:
                self.stats.unparsed += 1
                follow_up.append((i, as_messages(chunk[i]) + [{"role": "assistant", "content": text},
                                                             {"role": "user", "content": ANSWER_NOW[cfg.mode]}]))
            else:
                probs[i] = torch.nn.functional.one_hot(torch.tensor(k), len(cfg.labels)).float()
        self.stats.mass += float(len(chunk) - len(follow_up))
        if follow_up and cfg.on_unparsed == "ask":
            asked, mass = label_probs(self.backend.label_logprobs([m for _, m in follow_up], cfg.labels))
            probs[[i for i, _ in follow_up]] = asked
            self.stats.mass += float(mass.sum())
        return probs

    def compare(self, prompts: Sequence[Prompt], a: Sequence[Response], b: Sequence[Response]) -> PairVerdicts:
        """Judge each ``(x, a, b)``; both orders unless ``config.swap`` is False."""
        if self.config.mode != "pairwise":
            raise ValueError("compare needs a pairwise judge")
        if not len(prompts) == len(a) == len(b):
            raise ValueError("prompts, a and b must have the same length")
        n = len(prompts)
        jp = [self.pairwise_prompt(x, y1, y2) for x, y1, y2 in zip(prompts, a, b)]
        if self.config.swap:
            jp += [self.pairwise_prompt(x, y2, y1) for x, y1, y2 in zip(prompts, a, b)]
        p_a_label = self.verdict_probs(jp)[:, 0]
        p_first = p_a_label[:n]
        if not self.config.swap:
            self.stats.orders += n
            self.stats.first_wins += float(p_first.sum())
            return PairVerdicts(p_first, p_first, None, None)
        p_second = p_a_label[n:]
        consistent = swap_consistent(p_first, p_second)
        self.stats.pairs += n
        self.stats.consistent += int(consistent.sum())
        self.stats.orders += 2 * n
        self.stats.first_wins += float(p_first.sum() + p_second.sum())
        return PairVerdicts(swap_average(p_first, p_second), p_first, p_second, consistent)

    def reference_for(self, prompt: Prompt) -> Response:
        ref = self.references
        if isinstance(ref, str):
            return ref
        if callable(ref):
            return ref(prompt)
        try:
            return ref[prompt_key(prompt)]  # type: ignore[index]
        except KeyError:
            raise KeyError(f"no reference response for prompt {prompt_key(prompt)[:60]!r}") from None

    # ------------------------------------------------------------------ Reward
    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return torch.zeros(0)
        cfg = self.config
        if cfg.mode == "pointwise":
            probs = self.verdict_probs([self.pointwise_prompt(x, y) for x, y in zip(prompts, responses)])
            return probs @ torch.tensor(cfg.values, dtype=torch.float32)
        if cfg.against == "reference":
            return self.compare(prompts, responses, [self.reference_for(x) for x in prompts]).p.float()
        groups: dict[str, list[int]] = {}
        for i, x in enumerate(prompts):
            groups.setdefault(prompt_key(x), []).append(i)
        pairs = [(g[u], g[v]) for g in groups.values() for u in range(len(g)) for v in range(u + 1, len(g))]
        p = self.compare([prompts[i] for i, _ in pairs], [responses[i] for i, _ in pairs],
                         [responses[j] for _, j in pairs]).p if pairs else torch.zeros(0)
        out = torch.full((len(prompts),), 0.5)
        lookup = {pair: float(v) for pair, v in zip(pairs, p)}
        for g in groups.values():
            m = torch.eye(len(g)) * 0.5
            for u in range(len(g)):
                for v in range(u + 1, len(g)):
                    m[u, v] = lookup[(g[u], g[v])]
                    m[v, u] = 1.0 - m[u, v]
            out[g] = win_rate_rewards(m)
        return out


class progress_bar:
    """A rich progress bar when ``enabled`` (transient), else a no-op; yields ``advance(k)``."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled, self.description, self.total = enabled, description, total
        self.bar = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda k: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            transient=True)
        self.bar.start()
        task = self.bar.add_task(self.description, total=self.total)
        return lambda k: self.bar.advance(task, k)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
