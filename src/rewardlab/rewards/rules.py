"""Verifiable rewards (registered rules) and mixtures of rewards, in the spirit of CGPO's mixture of judges.

Rules (each a :class:`RuleReward`, i.e. a :class:`~rewardlab.rewards.base.FunctionReward`; spec ``rule:NAME[:ARG...]``):

* ``exact``  — 1 if the response equals the prompt's reference answer after normalization (case, whitespace,
  trailing punctuation), else 0. Spec ``rule:exact:ANSWERS.jsonl``.
* ``numeric`` — 1 if the number extracted from the response equals the reference within ``tol``
  (``|a − b| ≤ tol·max(1, |b|)``), else 0. The extracted number is the last ``\\boxed{...}``, else the text after
  the last ``####`` (GSM8K style), else the last number in the text. Spec ``rule:numeric:ANSWERS.jsonl[:TOL]``.
* ``regex`` — 1 if ``re.search(PATTERN, response)`` matches, else 0 (format checks). Spec ``rule:regex:PATTERN``
  (everything after the second colon is the pattern).
* ``length`` — ``−scale · max(0, words − target)``, words = whitespace-separated tokens (tokenizer-free).
  Spec ``rule:length:TARGET[:SCALE]`` (scale 1/TARGET by default, so 2× the target costs 1).

``ANSWERS.jsonl`` rows are ``{"prompt": ..., "answer": ...}``. A prompt is looked up exactly, else as the longest
known prompt contained in it (a chat-templated prompt string); a text-only request (prompt ``""``, e.g. an OpenRLHF
``query`` without a usable prompt) uses the longest known prompt contained in the response text.

Labels: ``exact`` and ``numeric`` take the reference answer from the item's label when one is given
(``score(prompts, responses, labels=...)``, e.g. OpenRLHF's ``labels``), else from ``ANSWERS.jsonl``; without a
file (spec ``rule:exact``, ``rule:numeric``, ``rule:numeric::TOL``) every item needs a label.

Mixtures (spec ``mix:FILE.yaml``, see :func:`mixture_from_config`) pass labels on to the terms that use them, and
are batch-invariant exactly when all their terms are (:mod:`rewardlab.rewards.base`):

* :class:`WeightedSum` — ``r = Σ_i w_i r_i``.
* :class:`Gate` — routing: ``r = r_then`` where ``when(x, y) > threshold`` else ``r_else`` (e.g. a verifiable rule on
  prompts that have one, a reward model elsewhere); counts items per branch.
* :class:`Constrained` — CGPO-style constraints (Xu et al. 2024, "The Perfect Blend: Redefining RLHF with Mixture
  of Judges"): a judge *accepts* an item when its score is ``> threshold``; ``r = base`` when every judge accepts,
  else ``penalty`` (0 by default). Counts how often each judge rejects (``stats()``); the base reward is only
  computed for accepted items.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.data.records import Prompt, Response, prompt_key
from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward, Reward, is_batch_invariant, score_with_labels, uses_labels

# ----------------------------------------------------------------------------------------------- text helpers


def response_text(response: Response) -> str:
    """Plain text of a response: the string, or the contents of its messages joined by newlines."""
    return response if isinstance(response, str) else "\n".join(m.get("content", "") for m in response)


def normalize_answer(text: str) -> str:
    """Lower-case, collapse whitespace, strip surrounding whitespace and trailing ``.,;:!?``."""
    return re.sub(r"\s+", " ", text).strip().lower().rstrip(".,;:!?").strip()


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


def _to_float(s: str) -> float | None:
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


def extract_number(text: str) -> float | None:
    """The answer number in ``text``: the number in the last ``\\boxed{...}``, else the first number after the last
    ``####``, else the last number in the text."""
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    candidates = [(boxed[-1], -1)] if boxed else []
    if "####" in text:
        candidates.append((text.rsplit("####", 1)[1], 0))
    for candidate, which in [*candidates, (text, -1)]:
        nums = _NUMBER.findall(candidate)
        if nums:
            return _to_float(nums[which])
    return None


# ----------------------------------------------------------------------------------------------- pure rule scores


def exact_match(response: str, answer: str) -> float:
    return float(normalize_answer(response) == normalize_answer(answer))


def numeric_match(response: str, answer: float | str, tol: float = 1e-6) -> float:
    got = extract_number(response)
    want = answer if isinstance(answer, (int, float)) else extract_number(str(answer))
    if got is None or want is None or not math.isfinite(got):
        return 0.0
    return float(abs(got - want) <= tol * max(1.0, abs(want)))


def regex_match(response: str, pattern: re.Pattern | str) -> float:
    return float(re.search(pattern, response) is not None)


def length_penalty(response: str, target: int, scale: float | None = None) -> float:
    """``−scale · max(0, words − target)`` (``scale`` defaults to ``1/target``)."""
    scale = 1.0 / max(1, target) if scale is None else scale
    return -scale * max(0, len(response.split()) - target)


# ----------------------------------------------------------------------------------------------- reference answers


class AnswerBank:
    """Reference answers per prompt (``{"prompt": ..., "answer": ...}`` JSONL rows)."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self._texts = sorted((k for k in answers if k and not k.startswith("[")), key=len, reverse=True)

    @classmethod
    def from_file(cls, path: str | Path) -> AnswerBank:
        answers: dict[str, Any] = {}
        problems = []
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}:1: cannot read answers file ({e})") from None
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{i}: invalid JSON ({e.msg})")
                continue
            if not isinstance(row, dict) or "prompt" not in row or "answer" not in row:
                problems.append(f"{path}:{i}: expected an object with 'prompt' and 'answer'")
                continue
            answers[prompt_key(row["prompt"])] = row["answer"]
        if problems:
            raise UserError(*problems)
        if not answers:
            raise UserError(f"{path}:1: no answers")
        return cls(answers)

    def lookup(self, prompt: Prompt, response: Response) -> tuple[Any, str]:
        """``(answer, answer_text)``: the reference answer and the part of the response to check. For a full text
        (prompt ``""``) the answer text is what follows the longest known prompt found in it."""
        key = prompt_key(prompt)
        text = response_text(response)
        if key in self.answers:
            return self.answers[key], text
        if isinstance(prompt, str):
            for k in self._texts:
                if key and k in key:  # e.g. the prompt after a chat template
                    return self.answers[k], text
                if not key and k in text:
                    return self.answers[k], text.split(k, 1)[1]
        raise UserError(f"no reference answer for prompt {str(key or text)[:60]!r}")


class RuleReward(FunctionReward):
    """A registered rule: a FunctionReward that declares its single output (the server need not probe it)."""

    num_outputs = 1


def _answer_rule(fn: Callable[[str, Any], float], bank: AnswerBank | None, name: str) -> RuleReward:
    """A rule checking the response against a reference answer: the item's label when given, else ``bank``'s."""
    def rule(prompt: Prompt, response: Response, label: Any = None) -> float:
        if label is not None:
            return fn(response_text(response), label)
        if bank is None:
            raise UserError(f"{name}: no label for prompt {str(prompt_key(prompt))[:60]!r}; this rule has no "
                            "answers file, so every item needs its reference answer as a label")
        answer, text = bank.lookup(prompt, response)
        return fn(text, answer)

    return RuleReward(rule, name=name)


RULES = ("exact", "numeric", "regex", "length")


def rule_from_spec(spec: str) -> RuleReward:
    """``rule:NAME[:ARG...]`` → the rule as a :class:`FunctionReward` (forms in the module docstring)."""
    parts = spec.split(":", 2)
    name = parts[1] if len(parts) > 1 else ""
    arg = parts[2] if len(parts) > 2 else ""
    if name not in RULES or (not arg and name in ("regex", "length")):
        raise UserError(f"reward spec {spec!r}: expected rule:NAME:ARG with NAME one of {', '.join(RULES)} "
                        "(rule:exact[:ANSWERS.jsonl], rule:numeric[:ANSWERS.jsonl][:TOL], rule:regex:PATTERN, "
                        "rule:length:TARGET[:SCALE])")
    try:
        if name == "regex":
            pattern = re.compile(arg)
            return RuleReward(lambda p, r: regex_match(response_text(r), pattern), name=f"regex:{arg}")
        if name == "length":
            target, _, scale = arg.partition(":")
            t, s = int(target), float(scale) if scale else None
            return RuleReward(lambda p, r: length_penalty(response_text(r), t, s), name=f"length:{t}")
        path, _, tol = arg.partition(":")
        bank = AnswerBank.from_file(path) if path else None  # no file: answers come from the labels
        if name == "exact":
            return _answer_rule(lambda text, a: exact_match(text, str(a)), bank, "exact")
        t = float(tol) if tol else 1e-6
        return _answer_rule(lambda text, a: numeric_match(text, a, t), bank, "numeric")
    except (ValueError, re.error) as e:
        raise UserError(f"reward spec {spec!r}: {e}") from None


# ----------------------------------------------------------------------------------------------- mixtures


def _scalar(reward: Reward, prompts: Sequence[Prompt], responses: Sequence[Response],
            labels: Sequence[Any] | None = None) -> torch.Tensor:
    if not prompts:
        return torch.zeros(0)
    s = score_with_labels(reward, prompts, responses, labels).float()
    if s.dim() != 1:
        raise ValueError(f"{getattr(reward, 'name', type(reward).__name__)}: mixtures need scalar rewards [n]")
    return s


def _pick(values: Sequence[Any] | None, idx: list[int]) -> list[Any] | None:
    return None if values is None else [values[i] for i in idx]


class _Mixture:
    """What every mixture declares from its parts: labels are used if any part uses them, batch invariance holds
    if every part is batch-invariant."""

    num_outputs = 1

    def parts(self) -> list[Reward]:
        raise NotImplementedError

    @property
    def uses_labels(self) -> bool:
        return any(uses_labels(r) for r in self.parts())

    @property
    def batch_invariant(self) -> bool:
        return all(is_batch_invariant(r) for r in self.parts())


class WeightedSum(_Mixture):
    """``r = Σ_i w_i r_i`` over scalar rewards."""

    def __init__(self, terms: Sequence[tuple[Reward, float]], name: str = "weighted-sum"):
        if not terms:
            raise ValueError("a weighted sum needs at least one term")
        self.terms, self.name = list(terms), name

    def parts(self) -> list[Reward]:
        return [r for r, _ in self.terms]

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response],
              labels: Sequence[Any] | None = None) -> torch.Tensor:
        return sum(w * _scalar(r, prompts, responses, labels) for r, w in self.terms)


class Gate(_Mixture):
    """Routing: ``r_then`` where ``when(x, y) > threshold``, else ``r_else``; each branch scores only its items.

    ``counts`` accumulates ``{"items", "then", "else"}`` over every call."""

    def __init__(self, when: Reward, then: Reward, otherwise: Reward, threshold: float = 0.5, name: str = "gate"):
        self.when, self.then, self.otherwise, self.threshold, self.name = when, then, otherwise, threshold, name
        self.counts = {"items": 0, "then": 0, "else": 0}

    def parts(self) -> list[Reward]:
        return [self.when, self.then, self.otherwise]

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response],
              labels: Sequence[Any] | None = None) -> torch.Tensor:
        take = _scalar(self.when, prompts, responses, labels) > self.threshold
        out = torch.zeros(len(prompts))
        for mask, reward in ((take, self.then), (~take, self.otherwise)):
            idx = mask.nonzero().flatten().tolist()
            out[idx] = _scalar(reward, _pick(prompts, idx), _pick(responses, idx), _pick(labels, idx))
        self.counts["items"] += len(prompts)
        self.counts["then"] += int(take.sum())
        self.counts["else"] += int((~take).sum())
        return out


@dataclass
class Judge:
    """A constraint judge: accepts an item when ``reward.score > threshold``."""

    name: str
    reward: Reward
    threshold: float = 0.5


class Constrained(_Mixture):
    """CGPO-style mixture of judges: ``r = base`` if every judge accepts, else ``penalty``.

    Every judge scores every item (so each judge's rejection count is exact, also when several reject the same
    item); the base reward scores only accepted items. ``stats()`` gives counts and rates since creation."""

    def __init__(self, base: Reward, judges: Sequence[Judge], penalty: float = 0.0, name: str = "constrained"):
        if not judges:
            raise ValueError("a constrained reward needs at least one judge")
        names = [j.name for j in judges]
        if len(set(names)) != len(names):
            raise ValueError(f"judge names must be unique, got {names}")
        self.base, self.judges, self.penalty, self.name = base, list(judges), penalty, name
        self.items, self.rejected = 0, 0
        self.fired = {j.name: 0 for j in self.judges}

    def parts(self) -> list[Reward]:
        return [self.base, *(j.reward for j in self.judges)]

    def rejections(self, prompts: Sequence[Prompt], responses: Sequence[Response],
                   labels: Sequence[Any] | None = None) -> torch.Tensor:
        """``[n, J]`` booleans: judge j rejects item i."""
        cols = [_scalar(j.reward, prompts, responses, labels) <= j.threshold for j in self.judges]
        return torch.stack(cols, 1) if cols else torch.zeros((len(prompts), 0), dtype=torch.bool)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[Response],
              labels: Sequence[Any] | None = None) -> torch.Tensor:
        rej = self.rejections(prompts, responses, labels)
        bad = rej.any(1)
        out = torch.full((len(prompts),), float(self.penalty))
        ok = (~bad).nonzero().flatten().tolist()
        out[ok] = _scalar(self.base, _pick(prompts, ok), _pick(responses, ok), _pick(labels, ok))
        self.items += len(prompts)
        self.rejected += int(bad.sum())
        for j, judge in enumerate(self.judges):
            self.fired[judge.name] += int(rej[:, j].sum())
        return out

    def stats(self) -> dict[str, Any]:
        n = max(1, self.items)
        return {"items": self.items, "rejected": self.rejected, "rejected_rate": self.rejected / n,
                "by_judge": dict(self.fired), "by_judge_rate": {k: v / n for k, v in self.fired.items()}}


def mixture_from_config(cfg: dict[str, Any], load: Callable[[str], Reward], origin: str = "mixture") -> Reward:
    """Build a mixture from a mapping (the YAML of a ``mix:FILE.yaml`` spec)::

        name: helpful-and-safe
        sum:                                  # or  reward: SPEC   or  gate: {when, then, else, threshold}
          - {reward: runs/rm, weight: 1.0}
          - {reward: "rule:length:120", weight: 0.5}
        constraints:                          # optional CGPO judges: any rejection -> penalty
          - {name: has-answer, reward: "rule:regex:Answer: \\\\d+", threshold: 0.5}
        penalty: 0.0
    """
    def need(d: Any, key: str, where: str) -> Any:
        if not isinstance(d, dict) or key not in d:
            raise UserError(f"{origin}: {where} needs '{key}'")
        return d[key]

    if not isinstance(cfg, dict):
        raise UserError(f"{origin}:1: a mixture must be a mapping")
    unknown = set(cfg) - {"name", "sum", "reward", "gate", "constraints", "penalty"}
    if unknown:
        raise UserError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    bases = [k for k in ("sum", "reward", "gate") if k in cfg]
    if len(bases) != 1:
        raise UserError(f"{origin}: give exactly one of 'sum', 'reward', 'gate' (got {bases or 'none'})")
    name = str(cfg.get("name", "mixture"))
    if "reward" in cfg:
        base = load(str(cfg["reward"]))
    elif "sum" in cfg:
        if not isinstance(cfg["sum"], list) or not cfg["sum"]:
            raise UserError(f"{origin}: 'sum' must be a non-empty list of {{reward, weight}}")
        base = WeightedSum([(load(str(need(t, "reward", "a sum term"))), float(t.get("weight", 1.0)))
                            for t in cfg["sum"]], name=name)
    else:
        g = cfg["gate"]
        base = Gate(load(str(need(g, "when", "gate"))), load(str(need(g, "then", "gate"))),
                    load(str(need(g, "else", "gate"))), float(g.get("threshold", 0.5)), name=name)
    if cfg.get("constraints"):
        judges = [Judge(str(need(c, "name", "a constraint")), load(str(need(c, "reward", "a constraint"))),
                        float(c.get("threshold", 0.5))) for c in cfg["constraints"]]
        base = Constrained(base, judges, float(cfg.get("penalty", 0.0)), name=name)
    return base


def mixture_from_spec(spec: str, load: Callable[[str], Reward]) -> Reward:
    """``mix:FILE.yaml`` → the mixture the file describes (see :func:`mixture_from_config`)."""
    import yaml

    path = spec.split(":", 1)[1]
    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}:1: cannot read mixture YAML ({e})") from None
    return mixture_from_config(cfg, load, origin=path)
