"""``vllm:DIR`` rewards (run with ``make test-vllm``; skipped where vLLM is not installed).

Reference: the same directory scored by rewardlab's torch path (:class:`~rewardlab.rewards.model.ModelReward`, itself
tested against transformers' own logits), on the same rendered items — long and empty prompts and responses, a
conversation — and through ``rewardlab score`` end to end. One engine at a time (vLLM runs one per process)."""

import json

import pytest
import torch

pytest.importorskip("vllm")

from transformers import AutoModelForSequenceClassification, LlamaModel  # noqa: E402

from rewardlab.errors import UserError  # noqa: E402
from rewardlab.models.checkpoint import save_reward_model  # noqa: E402
from rewardlab.models.reward_model import RewardModel  # noqa: E402
from rewardlab.models.tiny import tiny_reward_model  # noqa: E402
from rewardlab.rewards.registry import load_reward  # noqa: E402
from tests.models.hf_families import family_config, family_tokenizer, save_family  # noqa: E402

HEAD_DIM = 32  # vLLM's CPU attention kernels take head sizes 32, 64, 80, ... (hf_families' tiny configs have 8)


def config(family: str, tok, num_labels: int = 1):
    """hf_families' tiny config of ``family`` with 2 heads of 32 dims (Llama-style: 1 key-value head)."""
    cfg = family_config(family, tok, num_labels)
    if family == "gpt2":
        cfg.n_embd, cfg.n_head = 2 * HEAD_DIM, 2
    else:
        cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 2 * HEAD_DIM, 2, 1, HEAD_DIM
    return cfg


def save_classifier(family: str, corpus, out, num_labels: int = 1, seed: int = 0, pad_is_eos: bool = False) -> None:
    """A hub-style ``*ForSequenceClassification`` directory (weights + tokenizer), head weights of visible size;
    ``pad_is_eos``: pad = eos in tokenizer and config (transformers then reads the last token that is not eos)."""
    tok = family_tokenizer(family, corpus)
    cfg = config(family, tok, num_labels)
    if pad_is_eos:
        tok.pad_token = tok.eos_token
        cfg.pad_token_id = tok.eos_token_id
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(cfg)
    with torch.no_grad():
        model.score.weight.normal_(0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)

PROMPTS = ["the cat sat", "", "one two three four five six " * 3, "yes", [{"role": "user", "content": "hi there"}],
           ""]
RESPONSES = ["on a mat", "good answer", "no", "maybe please help me with this task now " * 2, "hello", ""]


def both(path) -> tuple[torch.Tensor, torch.Tensor]:
    """(torch path scores, vllm: scores) of ``path`` on the items above."""
    ref = load_reward(str(path), device="cpu").score(PROMPTS, RESPONSES)
    reward = load_reward(f"vllm:{path}", device="cpu")
    try:
        return ref, reward.score(PROMPTS, RESPONSES)
    finally:
        reward.close()


def test_gpt2_checkpoint_with_head_bias_and_output_normalization(tokenizer, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the converted copy is written
    (tmp_path / "tmp").mkdir()
    rm = tiny_reward_model(tokenizer, seed=1)
    rm.output_mean, rm.output_std = 0.4, 2.5  # folded into the converted head, with the bias (into ln_f's bias)
    with torch.no_grad():
        rm.head.bias.fill_(0.75)
    save_reward_model(rm, tokenizer, tmp_path / "rm")
    ref, got = both(tmp_path / "rm")
    assert got.shape == ref.shape == (len(PROMPTS),) and ref.std() > 0.05
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    assert list((tmp_path / "tmp").iterdir()) == []  # the copy is gone once vLLM has read it (no close at CLI exit)


def test_llama_checkpoint_bias_without_a_norm_bias_pad_is_eos(corpus, tmp_path):
    tok = family_tokenizer("llama", corpus)
    tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    rm = RewardModel(LlamaModel(config("llama", tok)), num_outputs=2, pooling="last", head_bias=True)
    with torch.no_grad():
        rm.head.bias.copy_(torch.tensor([0.5, -1.25]))  # RMSNorm has no bias: added back after vLLM (the residual)
    save_reward_model(rm, tok, tmp_path / "rm")
    ref, got = both(tmp_path / "rm")
    assert got.shape == ref.shape == (len(PROMPTS), 2)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "llama-pad-eos", "mistral", "gpt2"])
def test_imported_classifier_loaded_as_is(family, corpus, tmp_path):
    """Hub-style directories. Pad = eos: transformers reads the last token that is not eos (the conversation's
    rendering ends with Llama-3's <|eot_id|>), vLLM the last token: trailing eos is cut before vLLM."""
    save_classifier(family.split("-")[0], corpus, tmp_path / family, seed=2, pad_is_eos=family.endswith("pad-eos"))
    ref, got = both(tmp_path / family)
    assert ref.std() > 0.05
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_k_class_classifier_keeps_its_scalar(corpus, tmp_path):
    save_classifier("llama", corpus, tmp_path / "k3", num_labels=3, seed=4)
    ref = load_reward(str(tmp_path / "k3"), device="cpu")
    reward = load_reward(f"vllm:{tmp_path / 'k3'}", device="cpu")
    try:
        torch.testing.assert_close(reward.score(PROMPTS, RESPONSES), ref.score(PROMPTS, RESPONSES), atol=1e-4,
                                   rtol=1e-4)
        assert reward.aggregate is ref.aggregate  # the last-class log-odds, as the torch path
    finally:
        reward.close()


def test_encoders_are_refused_with_the_reason(corpus, tmp_path):
    save_family("bert", corpus, tmp_path / "bert")
    with pytest.raises(UserError, match="only decoder reward models"):
        load_reward(f"vllm:{tmp_path / 'bert'}", device="cpu")


def test_score_cli_equals_the_torch_path(cli, tokenizer, pair_rows, tmp_path):
    save_reward_model(tiny_reward_model(tokenizer, seed=3), tokenizer, tmp_path / "rm")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:12]))
    rows = {}
    for name, spec in (("torch", tmp_path / "rm"), ("vllm", f"vllm:{tmp_path / 'rm'}")):
        code, _, err = cli("score", spec, data, "-o", tmp_path / f"{name}.jsonl", "--device", "cpu")
        assert code == 0, err
        rows[name] = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert len(rows["vllm"]) == len(rows["torch"]) == 12
    for a, b in zip(rows["vllm"], rows["torch"]):
        assert a.keys() == b.keys()
        for key, value in b.items():
            if isinstance(value, float):
                assert abs(a[key] - value) < 1e-4, key
            else:
                assert a[key] == value, key


def test_best_of_n_with_vllm_sampling_and_a_vllm_reward(cli, tokenizer, corpus, tmp_path):
    """Two engines in one process (the policy's sampler and the reward's scorer): greedy best-of-n writes the table
    the torch reward and the transformers sampler write, to float rounding."""
    import csv

    from tests.optimize.test_vllm_engine import spread_policy

    spread_policy(tokenizer).save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    save_reward_model(tiny_reward_model(tokenizer, seed=5), tokenizer, tmp_path / "rm")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in corpus[:4]))
    tables = {}
    for engine, reward in (("transformers", tmp_path / "rm"), ("vllm", f"vllm:{tmp_path / 'rm'}")):
        out = tmp_path / engine
        code, _, err = cli("optimize", "bon", "--policy", tmp_path / "policy", "--prompts", prompts, "--reward",
                           reward, "--output", out, "--num-samples", "2", "--temperature", "0",
                           "--max-new-tokens", "12", "--engine", engine, "--device", "cpu")
        assert code == 0, err
        tables[engine] = list(csv.DictReader((out / "bon_table.csv").open()))
    assert len(tables["vllm"]) == len(tables["transformers"]) > 0
    for a, b in zip(tables["vllm"], tables["transformers"]):
        assert a.keys() == b.keys()
        for key in b:
            assert abs(float(a[key]) - float(b[key])) < 1e-4, (key, a[key], b[key])


def test_served_vllm_reward_answers_as_the_torch_one(tokenizer, tmp_path):
    """``rewardlab serve vllm:DIR``: the batcher calls the engine from its worker thread; /get_reward and /v1/score
    give the torch path's scores."""
    from fastapi.testclient import TestClient

    from rewardlab.serve.app import create_app

    save_reward_model(tiny_reward_model(tokenizer, seed=6), tokenizer, tmp_path / "rm")
    ref = load_reward(str(tmp_path / "rm"), device="cpu")
    reward = load_reward(f"vllm:{tmp_path / 'rm'}", device="cpu")
    texts = ["the cat sat on a mat", "héllo 世界 ✓ emoji 🐈", "a"]
    try:
        with TestClient(create_app(reward)) as client:
            got = client.post("/get_reward", json={"query": texts}).json()["rewards"]
            items = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES)]
            scores = client.post("/v1/score", json={"items": items}).json()["scores"]
    finally:
        reward.close()
    assert got == pytest.approx(ref.score([""] * 3, texts).tolist(), abs=1e-4)
    assert scores == pytest.approx(ref.score(PROMPTS, RESPONSES).tolist(), abs=1e-4)


def test_openrlhf_reward_model_with_normalize_reward(corpus, tmp_path, monkeypatch):
    """OpenRLHF's layout (value head, normalize_reward mean/std): converted, (r − μ)/σ folded into the head, its
    constant −μ/σ added back after vLLM (Llama's RMSNorm has no bias to hold it)."""
    from tests.models import hf_families

    monkeypatch.setattr(hf_families, "family_config", lambda family, tok, num_labels=1: config(family, tok, num_labels))
    hf_families.save_openrlhf(corpus, tmp_path / "openrlhf", mean=0.3, std=2.0)
    ref, got = both(tmp_path / "openrlhf")
    assert ref.std() > 0.01
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
