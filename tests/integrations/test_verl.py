"""rewardlab.integrations.verl called exactly the way verl calls a custom reward function (verl-project/verl @
1dda039: ``verl/trainer/ppo/reward.py:get_custom_reward_fn`` loads it, ``verl/utils/import_utils.py:load_module``
resolves ``pkg://``, ``NaiveRewardManager.run_single`` calls it per sample and ``RewardLoopWorker.
compute_score_batch`` gathers the samples of a batch concurrently)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from functools import partial

import pytest

from rewardlab.errors import UserError
from rewardlab.integrations import verl as adapter
from rewardlab.serve.server import ServerThread


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):  # verl/trainer/ppo/reward.py
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


async def _call_with_kwargs_async(raw_fn, extra_kwargs, *args, **kwargs):
    return await raw_fn(*args, **{**kwargs, **extra_kwargs})


def load_like_verl(path: str, name: str = "compute_score", reward_kwargs: dict | None = None):
    """get_custom_reward_fn with custom_reward_function.{path, name, reward_kwargs}."""
    assert path.startswith("pkg://")
    raw_fn = getattr(importlib.import_module(path[len("pkg://"):].replace("/", ".")), name)
    wrap = _call_with_kwargs_async if inspect.iscoroutinefunction(raw_fn) else _call_with_kwargs
    return partial(wrap, raw_fn, dict(reward_kwargs or {}))


async def run_single_like_verl(compute_score, item: dict) -> dict:
    """NaiveRewardManager.run_single after decoding: the keyword call, executor for sync, float or dict result."""
    loop = asyncio.get_running_loop()
    extra_info = dict(item.get("extra_info", {}))
    extra_info["num_turns"] = None
    extra_info["rollout_reward_scores"] = {}
    kwargs = dict(data_source=item["data_source"], solution_str=item["response"],
                  ground_truth=item["reward_model"]["ground_truth"], extra_info=extra_info)
    if inspect.iscoroutinefunction(compute_score):
        result = await compute_score(**kwargs)
    else:
        result = await loop.run_in_executor(None, lambda: compute_score(**kwargs))
    if isinstance(result, dict):
        return {"reward_score": result["score"], "reward_extra_info": dict(result)}
    return {"reward_score": result, "reward_extra_info": {"acc": result}}


def compute_score_batch(compute_score, items: list[dict]) -> list[float]:
    async def run():
        return await asyncio.gather(*(run_single_like_verl(compute_score, it) for it in items))
    return [out["reward_score"] for out in asyncio.run(run())]


def gsm8k_item(question: str, response: str, answer: str) -> dict:
    """A row as verl's examples/data_preprocess/gsm8k.py writes it, plus the decoded response."""
    return {"data_source": "openai/gsm8k", "reward_model": {"style": "rule", "ground_truth": answer},
            "extra_info": {"split": "train", "index": 0, "answer": f"... #### {answer}", "question": question},
            "response": response}


BATCHED = '''
SEEN = []

def batched(prompts, completions, **kwargs):
    SEEN.append((list(prompts), sorted(kwargs), kwargs["data_source"], kwargs["ground_truth"]))
    return [float(len(c)) + (10.0 if kwargs["extra_info"][i].get("index") == 3 else 0.0)
            for i, c in enumerate(completions)]
'''


@pytest.fixture(autouse=True)
def fresh_adapter(monkeypatch):
    monkeypatch.delenv(adapter.ENV_VAR, raising=False)
    adapter.configure(None)
    adapter._rewards.clear()
    yield
    adapter.configure(None)
    for reward, _ in adapter._rewards.values():
        getattr(reward, "close", lambda: None)()
    adapter._rewards.clear()


@pytest.mark.parametrize("name", ["compute_score", "compute_score_async"])
def test_a_rule_from_the_environment(monkeypatch, name):
    monkeypatch.setenv(adapter.ENV_VAR, "rule:numeric")
    fn = load_like_verl("pkg://rewardlab.integrations.verl", name)
    assert inspect.iscoroutinefunction(fn) == (name == "compute_score_async")
    items = [gsm8k_item("2+2?", "so #### 4", "4"), gsm8k_item("3+4?", "it is 8", "7"),
             gsm8k_item("6*7?", "\\boxed{42}", "42")]
    assert compute_score_batch(fn, items) == [1.0, 0.0, 1.0]


def test_a_batched_python_function_via_reward_kwargs(tmp_path, monkeypatch):
    (tmp_path / "verl_batched_mod.py").write_text(BATCHED)
    monkeypatch.chdir(tmp_path)
    fn = load_like_verl("pkg://rewardlab.integrations.verl", reward_kwargs={
        "rewardlab_spec": "python:verl_batched_mod:batched"})
    items = [gsm8k_item("q one", "abc", "1"), gsm8k_item("q two", "de", "2")]
    items[1]["extra_info"]["index"] = 3
    try:
        assert sorted(compute_score_batch(fn, items)) == [3.0, 12.0]
        seen = sorted(sys.modules["verl_batched_mod"].SEEN)
    finally:
        sys.modules.pop("verl_batched_mod", None)
    # the prompt is extra_info["question"]; data_source, ground_truth (also as labels), extra_info reach **kwargs
    assert seen[0] == (["q one"], ["data_source", "extra_info", "ground_truth", "labels"], ["openai/gsm8k"], ["1"])


def test_a_live_server_by_url_matches_offline_scores(model_reward):
    conv = [{"role": "user", "content": "the cat sat?"}]
    items = [gsm8k_item("the dog ran", "yes the dog ran", "x"), gsm8k_item("a big cat", "no", "y")]
    items.append({**gsm8k_item("", "a red mat", "z"), "extra_info": {"prompt": conv}})  # a conversational prompt
    items.append({**gsm8k_item("", "help me", "z"), "extra_info": {}})  # no prompt: the response alone
    expected = [*model_reward.score(["the dog ran", "a big cat"], ["yes the dog ran", "no"]).tolist(),
                model_reward.score([conv], [[{"role": "assistant", "content": "a red mat"}]]).item(),
                model_reward.score([""], ["help me"]).item()]
    with ServerThread(model_reward) as server:
        adapter.configure(server.url)
        for name in ("compute_score", "compute_score_async"):
            got = compute_score_batch(load_like_verl("pkg://rewardlab.integrations.verl", name), items * 4)
            assert got == pytest.approx(expected * 4, abs=1e-5)
    assert next(iter(adapter._rewards.values()))[1] is None  # URL rewards are not serialized behind a lock


def test_a_local_model_under_concurrent_samples(model_reward, monkeypatch):
    """Many samples at once through verl's executor threads: one local Reward, one call at a time, same scores."""
    monkeypatch.setattr("rewardlab.rewards.registry.load_reward", lambda spec, **kw: model_reward)
    adapter.configure("tiny-model-dir")
    prompts = [f"the cat {i}" for i in range(24)]
    responses = ["sat on a mat " * (1 + i % 5) for i in range(24)]
    got = compute_score_batch(load_like_verl("pkg://rewardlab.integrations.verl"),
                              [gsm8k_item(p, r, "") for p, r in zip(prompts, responses)])
    assert got == pytest.approx(model_reward.score(prompts, responses).tolist(), abs=1e-5)


def test_errors(monkeypatch):
    from rewardlab.rewards.base import FunctionReward

    fn = load_like_verl("pkg://rewardlab.integrations.verl")
    with pytest.raises(UserError, match="no reward configured"):
        compute_score_batch(fn, [gsm8k_item("q", "r", "1")])
    monkeypatch.setattr("rewardlab.rewards.registry.load_reward",
                        lambda spec, **kw: FunctionReward(lambda p, r: float("nan"), name="nan"))
    adapter.configure("nan-reward")
    with pytest.raises(ValueError, match="'nan' gave nan .* verl needs a finite reward"):
        compute_score_batch(fn, [gsm8k_item("q", "r", "1")])
