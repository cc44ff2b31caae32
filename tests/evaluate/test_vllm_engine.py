"""``rewardlab eval --policy DIR --engine vllm`` (run with ``make test-vllm``; skipped where vLLM is not installed).
Reference: the same command on the transformers engine; with greedy decoding the samples, hence every teacher metric,
are the same."""

import json

import pytest

pytest.importorskip("vllm")

from tests.optimize.test_vllm_engine import spread_policy  # noqa: E402


def test_eval_policy_greedy_metrics_equal_on_both_engines(cli, tmp_path, tokenizer, corpus):
    policy = tmp_path / "policy"
    spread_policy(tokenizer).save_pretrained(policy)
    tokenizer.save_pretrained(policy)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:6]))
    metrics = {}
    for engine in ("transformers", "vllm"):
        out = tmp_path / engine
        code, _, err = cli("eval", "rule:length:12", "--output", out, "--policy", policy, "--prompts", prompts,
                           "--gold", "rule:length:6", "--num-samples", "2", "--max-new-tokens", "12",
                           "--temperature", "0", "--engine", engine)
        assert code == 0, err
        metrics[engine] = json.loads((out / "metrics.json").read_text())
    text = {e: json.dumps(m, sort_keys=True) for e, m in metrics.items()}
    assert '"on_policy_accuracy"' in text["vllm"] and '"reward_variance"' in text["vllm"]  # the teacher metrics
    assert '"engine": "vllm"' in text["vllm"]  # the sampling config records the engine
    assert text["vllm"].replace('"engine": "vllm"', '"engine": "transformers"') == text["transformers"]
