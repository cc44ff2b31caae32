"""Hub ids (org/name[@revision]) as model paths: resolved to their snapshot in the HF cache (a fake cache laid
out as huggingface_hub writes it), downloaded with safetensors-only patterns, clear errors otherwise."""

from __future__ import annotations

import json

import pytest
import torch

from rewardlab.errors import UserError
from tests.models.hf_families import save_family

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, corpus):
    """An HF cache holding org/tiny-rm at COMMIT (refs/main points to it); returns (cache, snapshot dir)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    root = cache / "models--org--tiny-rm"
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    save_family("llama", corpus, snapshot)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache, snapshot


def test_hub_id_scores_as_its_cached_snapshot(hub_cache):
    from rewardlab.rewards.registry import load_reward

    _, snapshot = hub_cache
    prompts, responses = ["the cat sat", "yes"], [" on a mat", " no"]
    by_id = load_reward("org/tiny-rm", device="cpu").score(prompts, responses)
    assert torch.equal(by_id, load_reward(str(snapshot), device="cpu").score(prompts, responses))
    assert torch.equal(by_id, load_reward(f"org/tiny-rm@{COMMIT}", device="cpu").score(prompts, responses))


def test_cli_takes_hub_ids_and_a_local_path_wins(hub_cache, cli, tmp_path, monkeypatch):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "the cat", "chosen": " sat", "rejected": " ran"}) + "\n")
    code, _, err = cli("score", "org/tiny-rm", data, "-o", tmp_path / "s.jsonl")
    assert code == 0, err
    code, out, err = cli("data", "show", data, "--model", "org/tiny-rm", "-n", "1")
    assert code == 0 and "tokens" in out, err
    # a local directory of the same name is used, not the hub
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "tiny-rm").mkdir(parents=True)
    code, _, err = cli("score", "org/tiny-rm", data, "-o", tmp_path / "t.jsonl")
    assert code == 2 and "org/tiny-rm: not a reward model" in err


def test_offline_and_not_cached_is_one_clear_line(hub_cache, cli, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "a", "chosen": " b", "rejected": " c"}) + "\n")
    code, _, err = cli("score", "org/absent-rm", data, "-o", tmp_path / "s.jsonl")
    assert code == 2
    assert "org/absent-rm: not a local directory and not in the Hugging Face cache" in err
    assert "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_download_asks_for_safetensors_never_pickles(monkeypatch, tmp_path, corpus):
    """Online and not cached: one snapshot_download with patterns that exclude pickled weights and remote code."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    from rewardlab.models import hub

    calls = []
    target = tmp_path / "downloaded"

    def fake_download(repo, revision=None, local_files_only=False, allow_patterns=None):
        calls.append({"repo": repo, "revision": revision, "local": local_files_only, "allow": allow_patterns})
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        save_family("gpt2", corpus, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert hub.local_model_path("org/new-rm@v1") == str(target)
    assert [c["local"] for c in calls] == [True, False] and calls[1]["revision"] == "v1"
    allow = calls[1]["allow"]
    assert "*.safetensors" in allow and "README.md" in allow and "*.json" in allow
    import fnmatch

    for pickled in ("pytorch_model.bin", "model.pt", "training_args.bin", "modeling_custom.py", "optimizer.pth"):
        assert not any(fnmatch.fnmatch(pickled, pattern) for pattern in allow), pickled


def test_hub_errors_become_user_errors(monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    from rewardlab.models import hub

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/models/org/x"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for error, expected in ((GatedRepoError("gated", response=response), "gated model"),
                            (RepositoryNotFoundError("missing", response=response), "no such model on the hub"),
                            (OSError("network unreachable"), "downloading it failed")):
        def fake(repo, revision=None, local_files_only=False, allow_patterns=None, error=error):
            raise LocalEntryNotFoundError("x") if local_files_only else error

        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
        with pytest.raises(UserError, match=expected):
            hub.hub_snapshot("org/x")


def test_what_is_a_hub_id(tmp_path, monkeypatch):
    from rewardlab.models.hub import is_hub_id

    monkeypatch.chdir(tmp_path)
    assert is_hub_id("Skywork/Skywork-Reward-V2-Llama-3.1-8B") and is_hub_id("org/name@main")
    for not_id in ("/abs/path", "./org/name", "a/b/c", "tiny", "http://host:8000", "python:mod:fn", "prm:a/b:min"):
        assert not is_hub_id(not_id), not_id
    (tmp_path / "runs" / "rm").mkdir(parents=True)
    assert not is_hub_id("runs/rm")


def test_train_base_hub_reward_model_keeps_its_head(hub_cache, cli, tmp_path, pair_rows):
    """--base org/name of a hub RM continues from it (head kept): with lr 1e-12 the run scores as the hub model."""
    from rewardlab.rewards.registry import load_reward

    _, snapshot = hub_cache
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pair_rows[:8]))
    code, out, err = cli("train", "--data", data, "--base", "org/tiny-rm", "--output", tmp_path / "run",
                         "--epochs", "1", "--batch-size", "4", "--lr", "1e-12")
    assert code == 0, err
    assert "continuing from the reward model org/tiny-rm" in out
    prompts, responses = [r["prompt"] for r in pair_rows[:4]], [r["chosen"] for r in pair_rows[:4]]
    ours = load_reward(str(tmp_path / "run"), device="cpu").score(prompts, responses)
    assert torch.allclose(ours, load_reward(str(snapshot), device="cpu").score(prompts, responses), atol=1e-5)
