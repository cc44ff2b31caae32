import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.models.checkpoint import save_reward_model
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.rewards.model import ModelReward
from rewardlab.rewards.registry import load_reward


def word_count(prompt, response):
    return float(len(response.split()))


def test_python_spec_scores_with_the_function():
    r = load_reward(f"python:{__name__}:word_count")
    assert r.score(["p", "p"], ["a b c", "d"]).tolist() == [3.0, 1.0]


def test_checkpoint_spec(tmp_path, tokenizer, corpus):
    model = tiny_reward_model(tokenizer, seed=2)
    save_reward_model(model, tokenizer, tmp_path / "rm")
    r = load_reward(str(tmp_path / "rm"))
    assert isinstance(r, ModelReward)
    torch.testing.assert_close(r.score(corpus[:3], corpus[3:6]), ModelReward(model, tokenizer).score(corpus[:3],
                                                                                                      corpus[3:6]))


@pytest.mark.parametrize("spec", ["nope/does-not-exist", "python:no_such_module_xyz:f", "python:os"])
def test_bad_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        load_reward(spec)
