"""TRL's real GRPOTrainer loop (trl 1.16) on a tiny GPT-2 policy built from config, rewarded through
make_reward_func by (a) a local checkpoint directory and (b) a live rewardlab server, with the teacher monitor."""

from __future__ import annotations

import random

import pytest
import torch

from tests.conftest import sentence

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

GROUP = 2  # num_generations
PROMPTS = 4  # prompts per step
STEPS = 2


class Spy:
    """What TRL handed the reward function and what it got back, one entry per call."""

    def __init__(self, func):
        self.func, self.calls = func, []
        self.__name__ = func.__name__

    def __call__(self, prompts, completions, **kwargs):
        out = self.func(prompts=prompts, completions=completions, **kwargs)
        self.calls.append({"prompts": prompts, "completions": completions, "kwargs": kwargs, "scores": out})
        return out


def _train(reward_func, prompts, tmp_path, tokenizer):
    from trl import GRPOConfig, GRPOTrainer

    from rewardlab.integrations.monitor import TeacherMonitor
    from rewardlab.models.tiny import tiny_causal_lm

    policy = tiny_causal_lm(tokenizer, seed=0)
    with torch.no_grad():  # a dedicated eos channel: hidden dim 0 is the constant 1 (ln_f weight 0, bias 1), only
        # eos reads it, with weight 4.5: P(eos) ≈ 0.26 at every position of plain and chat prompts (0.17 with 4.0 and
        # 0.36 with 5.0, measured), so completion lengths vary within each step
        e = tokenizer.eos_token_id
        policy.transformer.ln_f.weight[0], policy.transformer.ln_f.bias[0] = 0.0, 1.0
        policy.transformer.wte.weight[:, 0] = 0.0
        policy.transformer.wte.weight[e] = 0.0
        policy.transformer.wte.weight[e, 0] = 4.5
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    data = datasets.Dataset.from_dict({"prompt": prompts, "answer": [f"a{i}" for i in range(len(prompts))]})
    config = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=PROMPTS * GROUP,
                        num_generations=GROUP, max_completion_length=8, max_steps=STEPS, logging_steps=1,
                        learning_rate=1e-3, beta=0.0, report_to="none", save_strategy="no", use_cpu=True,
                        seed=0, dataloader_num_workers=0, disable_tqdm=True,
                        bf16=False)  # TRL defaults to bf16 autocast, which would also leak into later tests
    monitor = TeacherMonitor()
    spy = Spy(monitor.wrap(reward_func))
    trainer = GRPOTrainer(model=policy, reward_funcs=[spy], args=config, train_dataset=data,
                          processing_class=tokenizer, callbacks=[monitor])
    trainer.train()
    changed = any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())
    return trainer, spy, monitor, changed


def _check(trainer, spy, monitor, changed, offline_score):
    from rewardlab.integrations.monitor import group_metrics

    assert trainer.state.global_step == STEPS and changed  # optimizer steps happened and moved the policy
    assert len(spy.calls) == STEPS
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == STEPS
    for call, log, hist in zip(spy.calls, logs, monitor.history, strict=True):
        prompts, completions, scores = call["prompts"], call["completions"], call["scores"]
        assert len(completions) == len(scores) == PROMPTS * GROUP
        assert prompts[::GROUP] == prompts[1::GROUP]  # GRPO groups: each prompt num_generations times
        assert call["kwargs"]["answer"][::GROUP] == call["kwargs"]["answer"][1::GROUP]  # dataset column arrives
        assert all(isinstance(s, float) for s in scores)
        # the rewards are ours: equal to scoring the same completions offline, and TRL's logged mean is their mean
        assert scores == pytest.approx(offline_score(prompts, completions), abs=1e-4)
        assert log["reward"] == pytest.approx(sum(scores) / len(scores), abs=1e-5)
        assert log[f"rewards/{spy.__name__}/mean"] == pytest.approx(sum(scores) / len(scores), abs=1e-5)
        # the teacher monitor's numbers reached TRL's log of that step, computed from these rewards
        lengths = [len(ids) for ids in call["kwargs"]["completion_ids"]]
        keys = [str(p) for p in prompts]
        expected = group_metrics(keys, scores, lengths)
        assert hist["length_unit"] == "tokens"
        assert len(set(lengths)) > 1 and expected["teacher/num_groups"] == PROMPTS
        for key, value in expected.items():
            assert log[key] == pytest.approx(value, abs=1e-5), key


def test_grpo_with_a_local_checkpoint_directory(tmp_path, tokenizer):
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model
    from rewardlab.rewards.model import ModelReward
    from rewardlab.serve.client import make_reward_func

    rm = tiny_reward_model(tokenizer, seed=3)
    save_reward_model(rm, tokenizer, tmp_path / "rm")
    rng = random.Random(0)
    prompts = [sentence(rng, 2, 5) for _ in range(PROMPTS * STEPS)]
    reward = make_reward_func(str(tmp_path / "rm"))
    offline = ModelReward(rm, tokenizer)
    result = _train(reward, prompts, tmp_path, tokenizer)
    _check(*result, lambda p, c: offline.score(p, c).tolist())


def test_grpo_with_a_live_server_and_conversations(tmp_path, tokenizer, model_reward):
    from rewardlab.serve.client import make_reward_func
    from rewardlab.serve.server import ServerThread

    rng = random.Random(1)
    prompts = [[{"role": "user", "content": sentence(rng, 2, 5)}] for _ in range(PROMPTS * STEPS)]
    with ServerThread(model_reward) as server:
        reward = make_reward_func(server.url)
        trainer, spy, monitor, changed = _train(reward, prompts, tmp_path, tokenizer)
        reward.reward.close()
    first = spy.calls[0]["completions"][0]
    assert isinstance(first, list) and first[0]["role"] == "assistant"  # conversational completions were scored
    _check(trainer, spy, monitor, changed, lambda p, c: model_reward.score(p, c).tolist())
