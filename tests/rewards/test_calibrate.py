"""`rewardlab calibrate`: the manifest's normalization is the reference set's mean / population std (checked against
the standard library on independently scored responses), written atomically with every other key kept; bad inputs
exit 2 naming the file; `serve --normalize` and `/v1/score` normalize then answer (r − μ)/σ; training records the
eval split's stats."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from tests.rewards.calibrate_world import build_world, pstats, responses_of, write_jsonl


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("calibrate"))


@pytest.fixture
def rm(world, tmp_path):
    """A fresh copy of rm0 (calibrate rewrites its manifest)."""
    return shutil.copytree(world / "rm0", tmp_path / "rm0")


def manifest(d) -> dict:
    return json.loads((d / "rewardlab.json").read_text())


def model_scores(d, prompts, responses) -> list[float]:
    from rewardlab.rewards.model import ModelReward

    return ModelReward.from_pretrained(d, device="cpu").score(prompts, responses).tolist()


def test_calibrate_on_data_keeps_the_other_keys(cli, world, rm):
    before = manifest(rm)
    code, out, err = cli("calibrate", rm, "--data", world / "pairs.jsonl")
    assert code == 0, err
    after = manifest(rm)
    norm = after.pop("normalization")
    assert after == before and after["note"] == "kept"
    mean, std = pstats(model_scores(rm, *responses_of(world / "pairs.jsonl")))
    assert norm["mean"] == pytest.approx(mean, abs=1e-5) and norm["std"] == pytest.approx(std, abs=1e-5)
    assert norm["n"] == 48 and norm["source"]["data"]["rows"] == 24
    assert not [p for p in rm.iterdir() if p.name.endswith(".tmp")]
    # a second run replaces the stats (here: another reference set) and says what they were
    code, out, _ = cli("calibrate", rm, "--data", world / "ref.jsonl")
    assert code == 0 and "(was mean" in out and manifest(rm)["normalization"]["n"] == 32


def test_calibrate_on_policy_samples_pooled_with_data(cli, world, rm):
    from rewardlab.data.load import load_prompts
    from rewardlab.models.backbone import load_causal_lm
    from rewardlab.models.generation import sample

    code, _, err = cli("calibrate", rm, "--prompts", world / "prompts.jsonl", "--policy", world / "policy", "-n", 3,
                       "--max-new-tokens", 6, "--seed", 7, "--data", world / "ref.jsonl")
    assert code == 0, err
    norm = manifest(rm)["normalization"]
    model, tok = load_causal_lm(world / "policy")
    roll = sample(model, tok, load_prompts(world / "prompts.jsonl"), 3, 6, seed=7)
    ref_p, ref_r = responses_of(world / "ref.jsonl")
    mean, std = pstats(model_scores(rm, ref_p + roll.prompts, ref_r + roll.responses))
    assert norm["n"] == 32 + 15 and norm["mean"] == pytest.approx(mean, abs=1e-5)
    assert norm["std"] == pytest.approx(std, abs=1e-5)
    assert norm["source"]["policy"]["samples_per_prompt"] == 3 and norm["source"]["data"]["responses"] == 32


def test_k_output_checkpoint_gets_per_output_stats(cli, world, tmp_path):
    k2 = shutil.copytree(world / "k2", tmp_path / "k2")
    assert cli("calibrate", k2, "--data", world / "pairs.jsonl")[0] == 0
    norm = manifest(k2)["normalization"]
    from rewardlab.rewards.model import ModelReward

    s = ModelReward.from_pretrained(k2, device="cpu").score(*responses_of(world / "pairs.jsonl"))
    for j in range(2):
        m, sd = pstats(s[:, j].tolist())
        assert norm["outputs"]["mean"][j] == pytest.approx(m, abs=1e-5)
        assert norm["outputs"]["std"][j] == pytest.approx(sd, abs=1e-5)
    assert norm["mean"] == pytest.approx(pstats(s.mean(1).tolist())[0], abs=1e-5)


def test_bad_inputs_exit_2_and_leave_the_manifest_alone(cli, world, rm, tmp_path):
    from tests.models.hf_families import save_family

    before = (rm / "rewardlab.json").read_bytes()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "x"}])
    cases = [
        ((), "--prompts"),
        (("--prompts", world / "prompts.jsonl"), "--prompts and --policy go together"),
        (("--data", world / "pairs.jsonl", "-n", 0), "-n must be >= 1"),
        (("--data", tmp_path / "missing.jsonl"), "no such file"),
        (("--data", bad), f"{bad}:2"),
        (("--prompts", world / "prompts.jsonl", "--policy", tmp_path), "not a model directory"),
    ]
    for args, fragment in cases:
        code, _, err = cli("calibrate", rm, *args)
        assert code == 2 and fragment in err, (args, err)
    assert (rm / "rewardlab.json").read_bytes() == before
    hf = tmp_path / "hf-rm"
    save_family("gpt2", ["the cat sat on a mat"] * 20, hf)
    code, _, err = cli("calibrate", hf, "--data", world / "pairs.jsonl")
    assert code == 2 and "not a rewardlab checkpoint" in err and not (hf / "rewardlab.json").exists()
    same = write_jsonl(tmp_path / "same.jsonl", [{"prompt": "p", "response": "a cat"}] * 3)
    code, _, err = cli("calibrate", rm, "--data", same)
    assert code == 2 and "zero std" in err and (rm / "rewardlab.json").read_bytes() == before


def test_serve_normalize_works_after_calibrate(cli, world, rm, monkeypatch):
    import rewardlab.serve.server as server
    from rewardlab.rewards.registry import load_reward
    from rewardlab.serve.app import ServeConfig, create_app

    started = []
    monkeypatch.setattr(server, "serve_forever", lambda reward, **kw: started.append((reward, kw)))
    code, _, err = cli("serve", rm, "--normalize")
    assert code == 2 and "rewardlab calibrate" in err and not started  # no stats yet
    assert cli("calibrate", rm, "--data", world / "pairs.jsonl")[0] == 0
    assert cli("serve", rm, "--normalize")[0] == 0 and started[0][1]["config"].normalize
    norm = manifest(rm)["normalization"]
    texts = ["the cat sat", "a big red dog on a mat"]
    raw = model_scores(rm, ["", ""], texts)
    expected = [(r - norm["mean"]) / norm["std"] for r in raw]
    with TestClient(create_app(load_reward(str(rm), device="cpu"), ServeConfig(normalize=True))) as c:
        assert c.post("/get_reward", json={"query": texts}).json()["rewards"] == pytest.approx(expected, abs=1e-5)
        body = c.post("/v1/score", json={"items": [{"response": t} for t in texts], "normalize": True}).json()
    assert body["scores"] == pytest.approx(raw, abs=1e-5) and body["normalized"] == pytest.approx(expected, abs=1e-5)


def test_training_records_the_eval_split_stats(world, tmp_path, cli):
    from rewardlab.data.load import load_pairs
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    pairs = load_pairs(world / "pairs.jsonl")
    evals = load_pairs(world / "ref.jsonl")
    cfg = TrainConfig(output=str(tmp_path / "run"), epochs=1, batch_size=8, max_length=64, tiny_layers=1,
                      tiny_embd=16, tiny_vocab=96, device="cpu")
    train_reward_model(pairs, cfg, evals, progress=False)
    norm = manifest(tmp_path / "run")["normalization"]
    mean, std = pstats(model_scores(tmp_path / "run", *responses_of(world / "ref.jsonl")))
    assert norm["n"] == 32 and norm["source"]["eval_split"]["responses"] == 32
    assert norm["mean"] == pytest.approx(mean, abs=1e-4) and norm["std"] == pytest.approx(std, abs=1e-4)
    off = TrainConfig(**{**cfg.to_dict(), "output": str(tmp_path / "off"), "eval_normalization": False})
    train_reward_model(pairs, off, evals, progress=False)
    assert "normalization" not in manifest(tmp_path / "off")
    train_reward_model(pairs, TrainConfig(**{**cfg.to_dict(), "output": str(tmp_path / "noeval")}), progress=False)
    assert "normalization" not in manifest(tmp_path / "noeval")


def test_calibrate_data_split_of_a_datasetdict(cli, world, rm, tmp_path):
    import datasets

    rows = [json.loads(x) for x in (world / "pairs.jsonl").read_text().splitlines()]
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:20]),
                          "test": datasets.Dataset.from_list(rows[20:])}).save_to_disk(dd)
    code, _, err = cli("calibrate", rm, "--data", dd, "--split", "test")
    assert code == 0 and f"{dd}: using split 'test'" in err
    norm = manifest(rm)["normalization"]
    prompts = [r["prompt"] for r in rows[20:] for _ in range(2)]
    responses = [x for r in rows[20:] for x in (r["chosen"], r["rejected"])]
    mean, std = pstats(model_scores(rm, prompts, responses))
    assert norm["n"] == 8 and norm["source"]["data"]["split"] == "test"
    assert norm["mean"] == pytest.approx(mean, abs=1e-5) and norm["std"] == pytest.approx(std, abs=1e-5)
