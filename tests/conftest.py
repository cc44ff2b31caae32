import os
import random
import sys

# One thread per process: tests start subprocesses (CLI, servers, DDP) on a 2-core machine, and oversubscribed
# OpenMP threads spin-wait each other into a 10-20x slowdown.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"  # no network in tests: hub ids resolve from the (fake) HF cache or fail fast

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

WORDS = ("the cat dog sat ran on a mat big small red blue good bad answer question please help me with this "
         "task now yes no maybe one two three four five").split()


def sentence(rng: random.Random, lo: int = 3, hi: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    rng = random.Random(0)
    return [sentence(rng) for _ in range(400)]


@pytest.fixture(scope="session")
def tokenizer(corpus):
    from rewardlab.models.tiny import train_tiny_tokenizer

    return train_tiny_tokenizer(corpus, vocab_size=128)


@pytest.fixture
def pair_rows() -> list[dict]:
    rng = random.Random(1)
    rows = []
    for i in range(64):
        prompt = sentence(rng)
        chosen = "good " + sentence(rng)  # a learnable signal: chosen starts with "good"
        rejected = "bad " + sentence(rng)
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "id": str(i)})
    return rows


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `rewardlab ARGS` in-process through rewardlab.cli.main; returns (exit code, stdout, stderr).

    An exception other than SystemExit (a traceback for the user) propagates and fails the test.
    """
    from rewardlab.cli import main

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()  # only this command's output
        monkeypatch.setattr(sys, "argv", ["rewardlab", *map(str, args)])
        with pytest.raises(SystemExit) as e:
            main()
        out = capsys.readouterr()
        return e.value.code or 0, out.out, out.err

    return run


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """accelerate keeps one process-wide state (mixed precision, device); a test that builds an Accelerator (our
    trainers, TRL's) must not decide the precision of the next one."""
    yield
    if "accelerate.state" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
