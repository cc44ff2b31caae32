"""A policy too short for long multi-turn prompts, and bad prompt files: shared by tests/optimize and
tests/evaluate (the fixtures are re-exported by their conftest.py)."""

import random
import sys

import pytest

from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer
from tests.conftest import sentence
from tests.data.conftest import write_rows

POSITIONS, NEW = 64, 8  # the policy holds 64 positions; 8 generated tokens leave 56 for the prompt
REWARDS = '''
def letters(prompt, response):
    return sum(c in "abcdefghijklmnopqrstuvwxyz" for c in response) / 4

def vowels(prompt, response):
    return float(sum(c in "aeiou" for c in response))
'''
COMMANDS = {  # the smallest run of each command
    "bon": ["--n", "2"],
    "rloo": ["--steps", "1", "--k", "2", "--prompts-per-step", "2", "--eval-prompts", "2", "--eval-samples", "1"],
    "grpo": ["--steps", "1", "--k", "2", "--prompts-per-step", "2", "--eval-prompts", "2", "--eval-samples", "1"],
    "raft": ["--iterations", "1", "--k", "2", "--prompts-per-iteration", "2", "--eval-prompts", "2",
             "--eval-samples", "1"],
    "dpo": ["--iterations", "1", "--k", "2", "--prompts-per-iteration", "2", "--eval-prompts", "2",
            "--eval-samples", "1"],
}


def conversation(rng, turns: int) -> list[dict]:
    msgs = []
    for _ in range(turns):
        msgs += [{"role": "user", "content": sentence(rng, 6, 10)}, {"role": "assistant", "content": sentence(rng)}]
    return msgs + [{"role": "user", "content": "and one more question please"}]


@pytest.fixture(scope="module")
def long_world(tmp_path_factory, corpus):
    """A tiny GPT-2 policy with 64 positions, and prompts: 4 short ones, 2 long multi-turn conversations."""
    d = tmp_path_factory.mktemp("optinputs")
    tok = train_tiny_tokenizer(corpus, vocab_size=128)
    policy = tiny_causal_lm(tok, n_positions=POSITIONS)
    policy.save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    rng = random.Random(3)
    prompts = ["the cat", conversation(rng, 6), "a big dog", [{"role": "user", "content": "help me"}],
               conversation(rng, 8), "yes no maybe"]
    write_rows(d / "prompts.jsonl", [{"prompt": p} for p in prompts])
    # independent of rewardlab's encoding: the rendered conversations are far longer than 56 tokens, the rest short
    lengths = [len(tok(p)["input_ids"]) if isinstance(p, str) else
               len(tok.apply_chat_template(p, add_generation_prompt=True)["input_ids"]) for p in prompts]
    assert [n > POSITIONS - NEW for n in lengths] == [False, True, False, False, True, False], lengths
    (d / "opt_inputs_rewards.py").write_text(REWARDS)
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))


def common(world, prompts=None) -> list[str]:
    return ["--policy", world / "policy", "--prompts", prompts or world / "prompts.jsonl", "--reward",
            "python:opt_inputs_rewards:letters", "--gold", "python:opt_inputs_rewards:vowels", "--max-new-tokens",
            str(NEW)]


@pytest.fixture
def no_work(monkeypatch):
    """Loading prompts, the policy or a reward fails the test: the command must stop before any of them."""
    import rewardlab.data.load
    import rewardlab.models.backbone
    import rewardlab.rewards.registry

    def boom(*a, **k):
        raise AssertionError("work started before the output path was checked")

    for mod, name in [(rewardlab.data.load, "load_prompts"), (rewardlab.models.backbone, "load_causal_lm"),
                      (rewardlab.rewards.registry, "load_reward")]:
        monkeypatch.setattr(mod, name, boom)


BAD_PROMPTS = {  # file rows -> (line, words in the message)
    "empty": ([], 1, "file is empty"),
    "empty-string": ([{"prompt": "fine"}, {"prompt": ""}], 2, "'prompt'"),
    "lone-surrogate": ([{"prompt": "fine"}, {"prompt": "ok"}, '{"prompt": "bad \\ud800 here"}'], 3, "surrogate"),
    "over-long-line": ([{"prompt": "fine"}, {"prompt": "x" * (8 * 1024 * 1024 + 10)}], 2, "over the limit"),
}


def check_unusable_outputs(cli, argv: list, tmp_path) -> None:
    """`argv -o FILE` and `argv -o FILE/sub` exit 2 naming the problem; nothing is created, the file is untouched;
    a read-only directory (skipped as root, who can write anyway) exits 2 too."""
    import os

    f = tmp_path / "a-file"
    f.write_text("keep me")
    code, _, stderr = cli(*argv, "-o", f)
    assert code == 2 and stderr.strip() == f"--output {f}: is a file, expected a directory"
    code, _, stderr = cli(*argv, "-o", f / "sub")
    assert code == 2 and f"lies under {f}, which is a file" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and f.read_text() == "keep me"
    if os.geteuid() == 0:
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, stderr = cli(*argv, "-o", ro / "sub")
        assert code == 2 and "is not writable" in stderr and list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)
