import json

import pytest

from tests.optimize.inputs_world import long_world, no_work  # noqa: F401

REWARDS = """
def letters(prompt, response):
    return sum(c in "abcdefghijklmnopqrstuvwxyz" for c in response) / 4

def vowels(prompt, response):
    return float(sum(c in "aeiou" for c in response))
"""


@pytest.fixture
def setup(tmp_path, monkeypatch, corpus):
    """(tmp_path, the options of a tiny optimize run: policy, 16 prompts, proxy python:cli_rewards_mod:letters and
    gold python:cli_rewards_mod:vowels, 8 new tokens, --eval-prompts last)."""
    (tmp_path / "cli_rewards_mod.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:16]))
    return tmp_path, ["--policy", "tiny", "--prompts", str(prompts), "--reward", "python:cli_rewards_mod:letters",
                      "--gold", "python:cli_rewards_mod:vowels", "--max-new-tokens", "8", "--eval-prompts", "4"]
