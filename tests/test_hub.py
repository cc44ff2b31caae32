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
    assert "org/absent-rm: no such local file or directory, and no model in the Hugging Face cache" in err
    assert "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_download_asks_for_safetensors_never_pickles(monkeypatch, tmp_path, corpus):
    """Online and not cached: one snapshot_download with patterns that exclude pickled weights and remote code."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    from rewardlab import hub

    calls = []
    target = tmp_path / "downloaded"

    def fake_download(repo, repo_type="model", revision=None, local_files_only=False, allow_patterns=None):
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

    from rewardlab import hub

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/models/org/x"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for error, expected in ((GatedRepoError("gated", response=response), "gated model"),
                            (RepositoryNotFoundError("missing", response=response), "no such model on the hub"),
                            (OSError("network unreachable"), "downloading it failed")):
        def fake(repo, repo_type="model", revision=None, local_files_only=False, allow_patterns=None,
                 error=error):
            raise LocalEntryNotFoundError("x") if local_files_only else error

        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
        with pytest.raises(UserError, match=expected):
            hub.hub_snapshot("org/x")


def test_what_is_a_hub_id(tmp_path, monkeypatch):
    from rewardlab.hub import is_hub_id

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


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))


@pytest.fixture
def hub_dataset(hub_cache, tmp_path, monkeypatch, pair_rows):
    """org/prefs in the fake cache, laid out as the hub's Parquet conversion does (data/{split}-00000-of-00001)."""
    import datasets

    cache, _ = hub_cache
    root = cache / "datasets--org--prefs"
    snapshot = root / "snapshots" / COMMIT
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in pair_rows]
    _parquet(snapshot / "data" / "train-00000-of-00001.parquet", rows[:40])
    bad = rows[40:48] + [{"prompt": "p", "chosen": "same", "rejected": "same"}]
    _parquet(snapshot / "data" / "test-00000-of-00001.parquet", bad)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    return rows


def test_hub_dataset_ids_are_read_by_split(hub_dataset, cli, tmp_path):
    code, out, err = cli("score", "org/tiny-rm", "org/prefs", "-o", tmp_path / "s.jsonl")
    assert code == 0, err
    assert "using split 'train'" in err
    from rewardlab.rewards.registry import load_reward

    scored = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(scored) == 40  # the train split, in order
    first = hub_dataset[0]
    ref = load_reward("org/tiny-rm", device="cpu").score([first["prompt"]] * 2, [first["chosen"], first["rejected"]])
    assert scored[0]["chosen_score"] == pytest.approx(float(ref[0]), abs=1e-5)
    assert scored[0]["rejected_score"] == pytest.approx(float(ref[1]), abs=1e-5)
    # the test split's 9th row has identical responses: named by the id and its row within the split
    code, _, err = cli("data", "validate", "org/prefs", "--split", "test")
    assert code == 2 and "org/prefs:9: chosen and rejected are identical" in err, err


def test_a_folder_of_data_files_reads_like_a_hub_repo(tmp_path, cli, pair_rows):
    """A `git clone` of a dataset repo: JSON lines per split, no saved-`datasets` metadata."""
    clone = tmp_path / "clone"
    (clone / "data").mkdir(parents=True)
    for split, part in (("train", pair_rows[:10]), ("test", pair_rows[10:14])):
        (clone / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    code, out, err = cli("data", "validate", clone, "--split", "test")
    assert code == 0, err
    assert "4 rows OK" in out and "using split 'test'" in out + err


def test_missing_data_names_say_what_they_are(hub_cache, cli, tmp_path):
    code, _, err = cli("data", "validate", "org/absent-data")
    assert code == 2 and "no dataset in the Hugging Face cache" in err and "--repo-type dataset" in err
    code, _, err = cli("data", "validate", "data/train.jsonl")  # a missing file is never looked up on the hub
    assert code == 2 and "data/train.jsonl: no such file or directory" in err


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub(hub_cache, cli, tmp_path, monkeypatch):
    import huggingface_hub

    def no_network(*args, local_files_only=False, **kwargs):
        if not local_files_only:
            raise AssertionError("the hub was asked for a mistyped local path")
        from huggingface_hub.errors import LocalEntryNotFoundError

        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "rm").mkdir(parents=True)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "a", "chosen": " b", "rejected": " c"}) + "\n")
    code, _, err = cli("score", "runs/rmm", data, "-o", tmp_path / "s.jsonl")
    assert code == 2 and "runs/rmm: no such file or directory (runs/ exists" in err
    assert "did you mean runs/rm?" in err
