"""``rewardlab optimize ... --engine vllm`` (run with ``make test-vllm``; skipped where vLLM is not installed).

References: the transformers engine on the same policy. Greedy best-of-n writes the same table with both engines;
after an optimizer step the session's vLLM engine samples the updated policy (greedy = transformers greedy of the new
weights; with LoRA, of the adapted policy)."""

import csv
import json

import pytest
import torch

pytest.importorskip("vllm")

from rewardlab.models.generation import sample, sequence_logprobs  # noqa: E402
from rewardlab.models.tiny import tiny_causal_lm  # noqa: E402
from rewardlab.optimize.common import LoopArgs  # noqa: E402
from rewardlab.optimize.session import Session  # noqa: E402
from rewardlab.rewards.base import FunctionReward  # noqa: E402

LETTERS = FunctionReward(lambda p, r: sum(c in "abcdefghijklmnopqrstuvwxyz" for c in r) / 4, name="letters")


def spread_policy(tokenizer, seed: int = 0):
    """A tiny GPT-2 with weights of std 0.3 (varied greedy continuations, unlike the 0.02 init)."""
    lm = tiny_causal_lm(tokenizer, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return lm


@pytest.fixture
def policy_dir(tmp_path, tokenizer):
    path = tmp_path / "policy"
    spread_policy(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_bon_greedy_table_is_the_same_with_both_engines(cli, setup, policy_dir):
    tmp, opts = setup
    opts = [o if o != "tiny" else str(policy_dir) for o in opts[:-2]]  # no --eval-prompts: bon does not evaluate
    tables = {}
    for engine in ("transformers", "vllm"):
        out = tmp / engine
        code, _, err = cli("optimize", "bon", *opts, "--output", out, "--num-samples", "2", "--temperature", "0",
                           "--max-new-tokens", "16", "--engine", engine)
        assert code == 0, err
        tables[engine] = list(csv.DictReader((out / "bon_table.csv").open()))
        assert json.loads((out / "summary.json").read_text())["args"]["engine"] == engine
    assert tables["vllm"] == tables["transformers"]


@pytest.mark.parametrize("lora_r", [0, 4])
def test_session_samples_the_updated_policy(tokenizer, corpus, lora_r):
    policy = spread_policy(tokenizer)
    prompts = corpus[:6]
    args = LoopArgs(engine="vllm", lora_r=lora_r, lr=0.05, max_new_tokens=12, eval_prompts=2, eval_samples=1)
    s = Session(policy, tokenizer, LETTERS, prompts, args, progress=False)
    try:
        before = s.sample_policy(policy, tokenizer, prompts, 1, 12, temperature=0).response_ids
        assert before == sample(policy, tokenizer, prompts, 1, 12, temperature=0).response_ids
        ro = sample(policy, tokenizer, prompts, 1, 12, temperature=1.0, seed=1)
        for _ in range(3):  # raise the likelihood of other responses: the greedy ones change
            logps, mask = sequence_logprobs(policy, ro.prompt_ids, ro.response_ids, s.pad_id)
            s.update(-(logps * mask).sum())
        after = s.sample_policy(policy, tokenizer, prompts, 1, 12, temperature=0).response_ids
        assert after == sample(policy, tokenizer, prompts, 1, 12, temperature=0).response_ids
        assert after != before and s.synced_version == s.weights_version == 3
    finally:
        s.closing.close()


def test_raft_runs_on_vllm(cli, setup):
    tmp, opts = setup
    out = tmp / "raft"
    code, _, err = cli("optimize", "raft", *opts, "--output", out, "--iterations", "2", "--num-samples", "2",
                       "--prompts-per-iteration", "4", "--engine", "vllm")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["args"]["engine"] == "vllm" and [e["step"] for e in summary["evaluations"]] == [0, 1, 2]
    assert (out / "policy" / "config.json").exists()
