"""`teachers` on a real tiny policy: one shared sample for every reward, metrics equal to independent computation,
the verdict from short probes, and the command with every kind of reward spec."""

import json
import random
import zlib

import numpy as np
import pytest
import torch

from rewardlab.evaluate import metrics as M
from rewardlab.evaluate.teacher import SamplingConfig, sample_rollout
from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer
from rewardlab.rewards.base import FunctionReward
from rewardlab.teachers.probes import ProbeConfig
from rewardlab.teachers.run import TeachersConfig, measure
from rewardlab.teachers.verdict import ALIGNED, MISALIGNED
from tests.conftest import sentence

REWARDS = '''
import zlib

def gold(prompt, response):
    return len(response) / 10.0

def steep(prompt, response):
    return len(response) / 10.0

def flat(prompt, response):  # accurate, but a per-prompt offset dwarfs the within-prompt spread: low RV
    return len(response) / 1000.0 + (zlib.crc32(prompt.encode()) % 1000) / 10.0

def anti(prompt, response):  # misaligned, high variance
    return -len(response) / 2.0
'''


def gold(p, r):
    return len(r) / 10.0


def flat(p, r):
    return len(r) / 1000.0 + (zlib.crc32(p.encode()) % 1000) / 10.0


@pytest.fixture(scope="module")
def policy():
    rng = random.Random(0)
    prompts = [sentence(rng, 4, 6) for _ in range(12)]
    tok = train_tiny_tokenizer(prompts * 4, vocab_size=300)
    return tiny_causal_lm(tok, seed=0), tok, prompts


class Recorder:
    """A reward that remembers every (prompt, response) it scored."""

    def __init__(self, fn):
        self.fn, self.seen = fn, []

    def score(self, prompts, responses):
        self.seen += list(zip(prompts, responses, strict=True))
        return torch.tensor([self.fn(p, r) for p, r in zip(prompts, responses, strict=True)])


def test_every_reward_is_judged_on_the_same_shared_sample(policy):
    lm, tok, prompts = policy
    a, b, g = Recorder(gold), Recorder(lambda p, r: -len(r)), Recorder(gold)
    cfg = TeachersConfig(SamplingConfig(num_samples=4, max_new_tokens=8, seed=3), ProbeConfig(steps=0))
    doc = measure(lm, tok, {"a": a, "b": b}, prompts, g, None, cfg)
    assert a.seen == b.seen == g.seen and len(a.seen) == 4 * len(prompts)
    # ... and it is the rollout the sampler draws with that config, so the metrics are the library's on it
    ro = sample_rollout(lm, tok, prompts, cfg.sampling)
    assert [(p, r) for p, r in zip(ro.prompts, ro.responses, strict=True)] == a.seen
    s = np.array([-len(r) for r in ro.responses], dtype=float)
    gs = np.array([gold(p, r) for p, r in zip(ro.prompts, ro.responses, strict=True)])
    m = doc["rewards"]["b"]["metrics"]
    assert m["reward_variance"] == pytest.approx(M.reward_variance(s, ro.group))
    assert m["on_policy_accuracy"] == pytest.approx(M.on_policy_accuracy(s, gs, ro.group))
    lo, hi = m["reward_variance_ci"]
    assert lo <= m["reward_variance"] <= hi
    assert doc["probe"]["ran"] is False and "rl_probe" not in doc["rewards"]["a"]


def test_best_of_n_probe_is_the_unbiased_estimate_on_the_shared_sample(policy):
    lm, tok, prompts = policy
    cfg = TeachersConfig(SamplingConfig(num_samples=4, max_new_tokens=8, seed=1), ProbeConfig(steps=0))
    doc = measure(lm, tok, {"neg": FunctionReward(lambda p, r: -len(r))}, prompts, FunctionReward(gold), None, cfg)
    bon = doc["rewards"]["neg"]["best_of_n"]
    ro = sample_rollout(lm, tok, prompts, cfg.sampling)
    g = np.array([gold(p, r) for p, r in zip(ro.prompts, ro.responses, strict=True)]).reshape(len(prompts), 4)
    neg = -g  # the proxy is −10·gold: its best of all 4 is the gold-worst, by enumeration
    ties = (neg == neg.max(1, keepdims=True))  # tied maxima are picked uniformly
    pick = (g * ties).sum(1) / ties.sum(1)
    assert bon["n"] == [1, 2, 4]
    assert bon["gold_gain_at_m"] == pytest.approx(float((pick - g.mean(1)).mean()))
    assert bon["gold_gain_at_m"] < 0 and bon["gold_gain_at_m_ci"][1] < 0


def test_probes_rank_steep_over_flat_and_never_the_anti_aligned_first(policy):
    lm, tok, prompts = policy
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    rewards = {"flat": FunctionReward(flat), "anti": FunctionReward(lambda p, r: -len(r) / 2.0),
               "steep": FunctionReward(gold)}
    cfg = TeachersConfig(SamplingConfig(num_samples=8, max_new_tokens=16, seed=0),
                         ProbeConfig(steps=4, seeds=3, lr=0.03, max_new_tokens=16, eval_prompts=12))
    doc = measure(lm, tok, rewards, prompts, FunctionReward(gold), None, cfg)
    v = doc["verdict"]
    assert [r["reward"] for r in v["ranking"]] == ["steep", "flat", "anti"]
    assert [r["rank"] for r in v["ranking"]] == [1, 2, 3]
    assert [r["tier"] for r in v["ranking"]] == [ALIGNED, ALIGNED, MISALIGNED]
    assert v["verdict"] == "best teacher for this policy: steep"
    steep, flat_r = doc["rewards"]["steep"], doc["rewards"]["flat"]
    assert steep["metrics"]["reward_variance"] > 10 * flat_r["metrics"]["reward_variance"]  # as constructed
    assert all(r["gold_gain"] > 0 for r in steep["rl_probe"])
    assert any("reward hacking in the probe" in f for f in v["ranking"][2]["flags"])
    assert all(torch.equal(before[k], v_) for k, v_ in lm.state_dict().items())  # probes train copies


@pytest.fixture(scope="module")
def specs(tmp_path_factory, policy):
    """A tiny BT checkpoint, an exported HF classifier of it, a policy dir and a module of Python rewards."""
    from rewardlab.data.records import PreferencePair
    from rewardlab.models.export import export_hf
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    d = tmp_path_factory.mktemp("teachers")
    lm, tok, prompts = policy
    rng = random.Random(1)
    pairs = [PreferencePair(sentence(rng, 3, 5), sentence(rng, 4, 8), sentence(rng, 1, 2)) for _ in range(32)]
    (d / "pairs.jsonl").write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen,
                                                       "rejected": p.rejected}) + "\n" for p in pairs))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[:6]))
    train_reward_model(pairs, TrainConfig(output=str(d / "rm"), epochs=1, batch_size=16, max_length=64,
                                          tiny_vocab=300), progress=False)
    export_hf(d / "rm", d / "rm-hf")
    lm.save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    (d / "tw_rewards.py").write_text(REWARDS)
    (d / "mix.yaml").write_text("sum:\n  - {reward: 'rule:length:6', weight: 1.0}\n"
                                "  - {reward: 'rule:regex:cat', weight: 0.5}\n")
    return d


def test_command_takes_every_kind_of_reward_spec(specs, cli, monkeypatch):
    from rewardlab.serve.server import ServerThread

    monkeypatch.syspath_prepend(str(specs))
    server = ServerThread(FunctionReward(lambda p, r: len(r) / 3.0)).__enter__()  # a reward behind a live server
    kinds = [str(specs / "rm"), str(specs / "rm-hf"), "python:tw_rewards:anti", "rule:length:8",
             f"ensemble:mean:{specs / 'rm'},python:tw_rewards:steep", f"dpo:{specs / 'policy'}:{specs / 'policy'}",
             f"mix:{specs / 'mix.yaml'}", server.url]
    args = ["teachers", "--policy", specs / "policy", "--prompts", specs / "prompts.jsonl", "--data",
            specs / "pairs.jsonl", "--gold", "python:tw_rewards:gold", "-m", "4", "--max-new-tokens", "8",
            "--probe-steps", "1", "--probe-seeds", "1", "-o", specs / "out"]
    for k in kinds:
        args += ["--reward", k]
    try:
        code, out, err = cli(*args)
    finally:
        server.__exit__(None, None, None)
    assert code == 0, err
    doc = json.loads((specs / "out" / "teachers.json").read_text())
    assert [r["reward"] for r in doc["verdict"]["ranking"]] != [] and set(doc["rewards"]) == set(kinds)
    assert all(doc["rewards"][k]["metrics"]["accuracy"] is not None for k in kinds)
    assert "verdict:" in out and all(k in out for k in kinds)  # the terminal table names every reward in full
    assert (specs / "out" / "report.html").read_text().count("<tr>") >= len(kinds) + 1
    assert (specs / "out" / "teachers.png").stat().st_size > 0


def test_command_refuses_before_work(specs, cli):
    base = ["teachers", "--policy", specs / "policy", "--prompts", specs / "prompts.jsonl", "-o", specs / "o2"]
    code, _, err = cli(*base, "--reward", "python:tw_rewards:anti", "--reward", "python:tw_rewards:anti")
    assert code == 2 and "given twice" in err
    code, _, err = cli(*base, "--reward", "python:tw_rewards:anti", "-m", "1")
    assert code == 2 and "--num-samples must be >= 2" in err
    assert not (specs / "o2").exists()
    code, _, err = cli(*base[:-2], "-o", specs / "rm", "--reward", str(specs / "rm"))
    assert code == 2 and "is the same directory as the input --reward" in err


def test_a_second_writer_is_refused(specs, cli, monkeypatch):
    from rewardlab.io import output_lock

    monkeypatch.syspath_prepend(str(specs))
    with output_lock(specs / "locked"):
        code, _, err = cli("teachers", "--policy", specs / "policy", "--prompts", specs / "prompts.jsonl",
                           "--reward", "python:tw_rewards:anti", "-o", specs / "locked")
    assert code == 2 and "another rewardlab process" in err



def test_a_probe_leaves_no_policy_copy_alive_without_the_garbage_collector(policy, monkeypatch):
    """The optimize session must not hold its policy copies in a reference cycle: with automatic collection off,
    both copies of the probe (the student and its frozen reference) are freed when the probe returns."""
    import copy
    import gc
    import weakref

    from rewardlab.teachers import probes

    lm, tok, prompts = policy
    made, real = [], copy.deepcopy

    def spy(x, memo=None):
        y = real(x, memo)
        if memo is None and isinstance(y, torch.nn.Module):
            made.append(weakref.ref(y))
        return y

    monkeypatch.setattr(copy, "deepcopy", spy)
    monkeypatch.setattr(gc, "collect", lambda: 0)  # only reference counting may free them
    r = FunctionReward(gold)
    gc.disable()
    try:
        out = probes.rl_probe(lm, tok, r, 0.0, 1.0, prompts[:3], r,
                              ProbeConfig(steps=1, max_new_tokens=4, eval_prompts=2, eval_samples=1), seed=0)
        alive = [w() is not None for w in made]  # before collection resumes (it would free any cycle)
    finally:
        gc.enable()
    assert len(made) == 2 and out["evaluations"]  # the student and its frozen reference
    assert alive == [False, False]


def test_lora_probes_train_an_adapter_on_the_shared_policy_and_leave_it_unchanged(policy, monkeypatch):
    """``lora_r > 0``: no copy of the policy is made (the reference is the policy with its adapter off), each probe's
    fresh adapter is removed after it, and the policy's weights, requires_grad and dropout are as before."""
    import copy

    lm, tok, prompts = policy
    made, real = [], copy.deepcopy

    def spy(x, memo=None):
        y = real(x, memo)
        if memo is None and isinstance(y, torch.nn.Module):
            made.append(y)
        return y

    before = {k: v.clone() for k, v in lm.state_dict().items()}
    dropout = [m.p for m in lm.modules() if isinstance(m, torch.nn.Dropout)]
    monkeypatch.setattr(copy, "deepcopy", spy)
    rewards = {"steep": FunctionReward(gold), "anti": FunctionReward(lambda p, r: -len(r) / 2.0)}
    cfg = TeachersConfig(SamplingConfig(num_samples=4, max_new_tokens=8, seed=0),
                         ProbeConfig(steps=2, seeds=1, lr=0.03, optimizer="adamw", max_new_tokens=8, eval_prompts=6,
                                     eval_samples=2, lora_r=4))
    doc = measure(lm, tok, rewards, prompts, FunctionReward(gold), None, cfg)
    assert made == [] and doc["probe"]["lora_r"] == 4
    runs = [r for k in rewards for r in doc["rewards"][k]["rl_probe"]]
    assert len(runs) == 2 and all(np.isfinite([r["gold_gain"], r["proxy_gain"], r["kl"]]).all() for r in runs)
    assert all(r["evaluations"][0]["kl"] == 0.0 and r["kl"] > 0 for r in runs)  # each adapter fresh, then trained
    assert lm.state_dict().keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in lm.state_dict().items())
    assert all(p.requires_grad for p in lm.parameters()) and not lm.training
    assert [m.p for m in lm.modules() if isinstance(m, torch.nn.Dropout)] == dropout


def test_command_probe_lora_r(specs, cli, monkeypatch):
    monkeypatch.syspath_prepend(str(specs))
    base = ["teachers", "--policy", specs / "policy", "--prompts", specs / "prompts.jsonl", "--reward",
            "python:tw_rewards:steep", "--gold", "python:tw_rewards:gold", "-m", "4", "--max-new-tokens", "8",
            "--probe-steps", "2", "--probe-seeds", "1", "--probe-optimizer", "adamw", "--probe-lr", "0.03"]
    code, _, err = cli(*base, "--probe-lora-r", "2", "-o", specs / "lora")
    assert code == 0, err
    doc = json.loads((specs / "lora" / "teachers.json").read_text())
    run = doc["rewards"]["python:tw_rewards:steep"]["rl_probe"][0]
    assert doc["probe"]["lora_r"] == 2 and np.isfinite([run["gold_gain"], run["proxy_gain"], run["kl"]]).all()
    code, _, err = cli(*base, "--probe-lora-r", "-1", "-o", specs / "lora-bad")
    assert code == 2 and "--probe-lora-r must be >= 0" in err and not (specs / "lora-bad").exists()
