"""`rewardlab teachers` with the reward kinds test_run.py's command test does not cover: armo: and dpa: (ArmoRM),
judge: (pairwise and pointwise, on a tiny causal LM), micro: (MiCRo mixture), prm: (process reward model), a
PEFT/LoRA SEQ_CLS adapter directory and a hub id from the (fake) HF cache — all in one run, with --gold and --data.

Each instance is the cheapest one the reward's own tests build (their fixtures and helpers are imported from them).
"""

from __future__ import annotations

import json
import math
import random

import pytest

from tests.conftest import sentence
from tests.models.test_peft_import import adapter  # noqa: F401  (a fixture)
from tests.models.test_prm import save_token_classifier
from tests.rewards.test_judge_personalized_e2e import save_tiny_mixture
from tests.rewards.test_multiobjective import armo_dir  # noqa: F401  (a fixture)
from tests.teachers.test_run import REWARDS, policy  # noqa: F401  (policy: a fixture)
from tests.test_hub import hub_cache  # noqa: F401  (a fixture)

HUB_ID = "org/tiny-rm"  # what tests.test_hub's hub_cache puts in the fake HF cache


@pytest.fixture(scope="module")
def world(tmp_path_factory, policy, tokenizer, corpus, armo_dir, adapter):  # noqa: F811
    """The policy (also the judge's LM), prompts, pairs (some share a prompt, as in most preference data), the gold
    module, and one checkpoint of each kind; returns (dir, {kind: spec})."""
    d = tmp_path_factory.mktemp("kinds")
    lm, tok, prompts = policy
    lm.save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[:4]))
    rng = random.Random(2)
    shared = sentence(rng, 3, 5)
    pairs = [{"prompt": shared if i < 3 else sentence(rng, 3, 5), "chosen": sentence(rng, 4, 8),
              "rejected": sentence(rng, 1, 3)} for i in range(8)]
    (d / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (d / "tw_rewards.py").write_text(REWARDS)
    save_tiny_mixture(tokenizer, d / "micro")
    save_token_classifier("gpt2", corpus, d / "prm", 2)
    armo = armo_dir[0]
    return d, {"armo": f"armo:{armo}", "dpa": f"dpa:{armo}:helpfulness=1,verbosity=-0.5",
               "judge pairwise": f"judge:{d / 'policy'}:pairwise", "judge pointwise": f"judge:{d / 'policy'}:pointwise",
               "micro": f"micro:{d / 'micro'}", "micro min": f"micro:{d / 'micro'}:min",
               "micro head": f"micro:{d / 'micro'}:head=1", "prm": f"prm:{d / 'prm'}:min",
               "peft": str(adapter[0] / "adapter"), "hub": HUB_ID}


def test_command_takes_every_other_kind_of_reward_spec(world, hub_cache, cli, monkeypatch):  # noqa: F811
    d, kinds = world
    monkeypatch.syspath_prepend(str(d))
    specs = list(kinds.values())
    args = ["teachers", "--policy", d / "policy", "--prompts", d / "prompts.jsonl", "--data", d / "pairs.jsonl",
            "--gold", "python:tw_rewards:gold", "-m", "4", "--max-new-tokens", "8", "--probe-steps", "1",
            "--probe-seeds", "1", "--probe-eval-prompts", "2", "--probe-eval-samples", "2", "-o", d / "out"]
    for s in specs:
        args += ["--reward", s]
    code, out, err = cli(*args)
    assert code == 0, err
    doc = json.loads((d / "out" / "teachers.json").read_text())
    assert sorted(doc["rewards"]) == sorted(specs)  # keyed by the spec exactly as typed
    assert sorted(r["reward"] for r in doc["verdict"]["ranking"]) == sorted(specs)
    assert "verdict:" in out
    for kind, s in kinds.items():
        m = doc["rewards"][s]["metrics"]
        for key in ("reward_variance", "accuracy", "on_policy_accuracy"):
            assert m[key] is not None and math.isfinite(m[key]), (kind, key, m[key])
        assert math.isfinite(doc["rewards"][s]["best_of_n"]["gold_gain_at_m"]), kind
        assert [math.isfinite(r["gold_gain"]) for r in doc["rewards"][s]["rl_probe"]] == [True], kind
        assert s in out, kind  # the terminal table names every reward in full

    # the pairwise judge compares each --data pair on its own, as `rewardlab judge` does, even where pairs share a
    # prompt (scored together, the judge would rank all four responses of that prompt against each other)
    from rewardlab.rewards.registry import load_reward

    rows = [json.loads(x) for x in (d / "pairs.jsonl").read_text().splitlines()]
    v = load_reward(kinds["judge pairwise"], device="cpu").compare(
        [r["prompt"] for r in rows], [r["chosen"] for r in rows], [r["rejected"] for r in rows])
    assert doc["rewards"][kinds["judge pairwise"]]["metrics"]["accuracy"] == pytest.approx(
        float((v.p > 0.5).float().mean()))


class BelowAverage:
    """A batch-dependent reward (like a judge against the others): min(len − mean len of the call's responses, 0).
    Records the prompts of every call."""

    batch_invariant = False

    def __init__(self):
        self.calls: list[list[str]] = []

    def score(self, prompts, responses):
        import torch

        self.calls.append(list(prompts))
        n = torch.tensor([float(len(r)) for r in responses])
        return (n - n.mean()).clamp(max=0.0)


def test_a_batch_dependent_reward_is_scored_one_prompt_group_or_one_pair_per_call(policy):  # noqa: F811
    from rewardlab.data.records import PreferencePair
    from rewardlab.evaluate.teacher import SamplingConfig
    from rewardlab.rewards.base import FunctionReward
    from rewardlab.teachers.probes import ProbeConfig
    from rewardlab.teachers.run import TeachersConfig, measure

    lm, tok, prompts = policy
    given = prompts[:3] + prompts[:1]  # a prompt given twice is still two groups of samples
    # scored together the four responses' mean is 4: both chosen are >= it and score 0, tied with the first
    # rejected (7 > 4) — accuracy 0.5; pair by pair each chosen is above its own pair's mean — accuracy 1
    pairs = [PreferencePair("same", "x" * 8, "x" * 7), PreferencePair("same", "x", "")]
    r = BelowAverage()
    cfg = TeachersConfig(SamplingConfig(num_samples=3, max_new_tokens=8, seed=0), ProbeConfig(steps=0))
    doc = measure(lm, tok, {"below": r}, given, FunctionReward(lambda p, y: len(y) / 10.0), pairs, cfg)
    assert [len(c) for c in r.calls] == [3] * len(given) + [2] * len(pairs)
    assert [c[0] for c in r.calls[: len(given)]] == given and all(len(set(c)) == 1 for c in r.calls)
    assert doc["rewards"]["below"]["metrics"]["accuracy"] == 1.0
