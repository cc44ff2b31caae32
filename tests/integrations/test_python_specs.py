"""python:MOD:FN specs: per-item vs TRL-style batched functions (the rule, labels and columns), imports from the
current directory, and make_reward_func on specs and directories (only http(s):// strings are URLs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward, is_batched_function, score_with_labels
from rewardlab.rewards.registry import load_reward
from rewardlab.serve.client import make_reward_func

MODULE = '''
CALLS = []

def per_item(prompt, response):
    return float(len(response))

def trl_style(prompts, completions, **kwargs):
    CALLS.append(sorted(kwargs))
    gts = kwargs.get("ground_truth") or [None] * len(completions)
    return [float(len(c)) + (100.0 if c == gt else 0.0) for c, gt in zip(completions, gts)]

def only_kwargs(**kwargs):
    CALLS.append(sorted(kwargs))
    return [None if c == "?" else float(len(c)) for c in kwargs["completions"]]

def named(completions, solution):
    return [1.0 if c == s else 0.0 for c, s in zip(completions, solution)]

def labelled(prompts, completions, labels):
    return [1.0 if c == y else 0.0 for c, y in zip(completions, labels)]

def per_item_label(prompt, response, label=None):
    return 1.0 if response == label else 0.0

def wrong_length(prompts, completions):
    return [1.0]

NOT_A_FUNCTION = 3
'''

TRL_KWARGS = {"trainer_state": object(), "log_extra": lambda *a: None, "log_metric": lambda *a: None}


@pytest.fixture
def mod(tmp_path, monkeypatch, request):
    """A fresh module ``rl_mod_<test>`` written to tmp_path, which becomes the cwd (and is NOT on sys.path)."""
    name = f"rl_mod_{request.node.name}".replace("[", "_").replace("]", "_").replace("-", "_")
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_the_batched_rule():
    def a(prompt, response): ...
    def b(prompt, response, label=None): ...
    def c(prompt, response, **kw): ...
    def d(prompts, completions, **kwargs): ...
    def e(**kwargs): ...
    def f(completions, solution): ...
    def g(prompts): ...
    assert [is_batched_function(x) for x in (a, b, c, d, e, f, g, len)] == [False] * 3 + [True] * 4 + [False]


def test_python_spec_imports_from_the_current_directory(mod, tmp_path):
    before = list(sys.path)
    assert str(tmp_path) not in sys.path
    r = load_reward(f"python:{mod}:per_item")
    assert r.score(["p", "p"], ["abc", "d"]).tolist() == [3.0, 1.0] and not r.batched
    assert sys.path == before  # restored


def test_python_spec_from_another_directory_is_a_clear_user_error(mod, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    with pytest.raises(UserError, match=f"cannot import module '{mod}' from {other}: ModuleNotFoundError"):
        load_reward(f"python:{mod}:per_item")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=f"module '{mod}' .* has no function 'missing'"):
        load_reward(f"python:{mod}:missing")
    with pytest.raises(UserError, match="has no function 'NOT_A_FUNCTION'"):
        load_reward(f"python:{mod}:NOT_A_FUNCTION")
    with pytest.raises(UserError, match="expected python:MODULE:FUNCTION"):
        load_reward(f"python:{mod}")


def test_the_console_script_finds_a_module_in_its_cwd(tmp_path):
    """The `rewardlab` entry point has its own bin directory, not the cwd, as sys.path[0]."""
    (tmp_path / "cwd_rewards.py").write_text(MODULE)
    (tmp_path / "rows.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "aaaa", "rejected": "b"}) + "\n")
    exe = Path(sys.executable).parent / "rewardlab"
    run = subprocess.run([str(exe), "score", "python:cwd_rewards:trl_style", "rows.jsonl", "-o", "s.jsonl"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "s.jsonl").read_text()) == {"chosen_score": 4.0, "rejected_score": 1.0}
    gone = subprocess.run([str(exe), "score", "python:cwd_rewards:trl_style", str(tmp_path / "rows.jsonl"), "-o",
                           str(tmp_path / "t.jsonl")], cwd=tmp_path.parent, capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 2 and f"cannot import module 'cwd_rewards' from {tmp_path.parent}" in gone.stderr


def test_batched_functions_get_labels_and_columns_by_name(mod):
    trl = load_reward(f"python:{mod}:trl_style")
    m = sys.modules[mod]
    assert trl.batched and trl.uses_labels and trl.uses_columns
    got = score_with_labels(trl, ["p", "q"], ["42", "x"], ["42", "y"], columns={"ground_truth": ["42", "y"]})
    assert got.tolist() == [102.0, 1.0]
    assert m.CALLS[-1] == ["ground_truth", "labels"]  # prompts/completions are named parameters
    assert trl.score(["p"], ["42"]).tolist() == [2.0] and m.CALLS[-1] == []  # no labels, no columns: none passed
    only = load_reward(f"python:{mod}:only_kwargs")
    assert torch.isnan(only.score(["p", "p"], ["?", "ab"])[0]) and only.score(["p"], ["ab"]).tolist() == [2.0]
    assert m.CALLS[-1] == ["completions", "prompts"]
    named = load_reward(f"python:{mod}:named")  # takes no prompts, no labels, and only the columns it names
    assert not named.uses_labels
    assert named.score(["p", "p"], ["a", "b"], columns={"solution": ["a", "a"], "other": [1, 2]}).tolist() == [1, 0]
    labelled = load_reward(f"python:{mod}:labelled")
    assert score_with_labels(labelled, ["p", "p"], ["a", "b"], ["a", "a"]).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="returned 1 scores for 2 items"):
        load_reward(f"python:{mod}:wrong_length").score(["p", "p"], ["a", "b"])
    with pytest.raises(ValueError, match="column 'solution' has 1 values for 2 items"):
        named.score(["p", "p"], ["a", "b"], columns={"solution": ["a"]})


def test_per_item_functions_are_unchanged(mod):
    r = load_reward(f"python:{mod}:per_item_label")
    assert not r.batched and r.uses_labels and not r.uses_columns
    assert score_with_labels(r, ["p", "p"], ["a", "b"], ["a", "a"], columns={"x": [1, 2]}).tolist() == [1.0, 0.0]


def test_make_reward_func_on_python_specs_gets_trl_columns(mod):
    """The way TRL calls it: prompts=, completions=, completion_ids=, every dataset column, plus its hooks."""
    f = make_reward_func(f"python:{mod}:trl_style")
    m = sys.modules[mod]
    out = f(prompts=["p", "q"], completions=["42", "x"], completion_ids=[[1, 2], [3]], ground_truth=["42", "z"],
            **TRL_KWARGS)
    assert out == [102.0, 1.0] and m.CALLS[-1] == ["completion_ids", "ground_truth"]
    g = make_reward_func(f"python:{mod}:per_item_label", label_column="answer")
    assert g(prompts=["p", "p"], completions=["a", "b"], answer=["b", "b"], **TRL_KWARGS) == [0.0, 1.0]
    with pytest.raises(KeyError, match="label_column 'answer' is not a dataset column"):
        g(prompts=["p"], completions=["a"], **TRL_KWARGS)
    h = make_reward_func("rule:exact", label_column="answer")  # a labelled rule, answers from the dataset column
    assert h(prompts=["p", "p"], completions=["7", "8"], answer=["7", "7"], **TRL_KWARGS) == [1.0, 0.0]


def test_make_reward_func_on_a_checkpoint_directory(tmp_path, tokenizer, corpus):
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model
    from rewardlab.rewards.model import ModelReward
    from rewardlab.rewards.remote import RemoteReward

    model = tiny_reward_model(tokenizer, seed=4)
    save_reward_model(model, tokenizer, tmp_path / "rm")
    expected = ModelReward(model, tokenizer).score(corpus[:3], corpus[3:6]).tolist()
    for spec in (str(tmp_path / "rm"), tmp_path / "rm"):
        f = make_reward_func(spec)
        assert isinstance(f.reward, ModelReward)
        assert f(prompts=corpus[:3], completions=corpus[3:6], **TRL_KWARGS) == pytest.approx(expected, abs=1e-5)
    remote = make_reward_func("http://127.0.0.1:9")  # only http(s):// is a URL (no request is made here)
    assert isinstance(remote.reward, RemoteReward)
    remote.reward.close()
    with pytest.raises(UserError, match="not a checkpoint directory"):
        make_reward_func(str(tmp_path / "no-such-dir"))
    with pytest.raises(TypeError, match="apply to a server URL"):
        make_reward_func(str(tmp_path / "rm"), timeout_s=3)


def test_function_reward_none_is_nan():
    r = FunctionReward(lambda prompts, completions: [None, 2])
    v = r.score(["a", "b"], ["c", "d"])
    assert torch.isnan(v[0]) and v[1] == 2.0
