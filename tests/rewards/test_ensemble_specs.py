"""Ensemble specs outside the optimize loops: `rewardlab score 'ensemble:...'` standardizes each member with its
manifest's normalization (or every member on `--reference FILE`) before aggregating, and says with what; members
without stats exit 2 naming them. Expected scores are rebuilt by hand from the members' own `score` outputs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.ensemble import EnsembleReward, member_stats, ready_for_scoring
from tests.rewards.calibrate_world import build_world, pstats, responses_of


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = build_world(tmp_path_factory.mktemp("ensemble"))
    return d


@pytest.fixture
def members(world, tmp_path):
    """Fresh copies of rm0, rm1 (calibrate rewrites manifests)."""
    return [shutil.copytree(world / f"rm{i}", tmp_path / f"rm{i}") for i in (0, 1)]


def read_jsonl(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def member_scores(cli, spec, file, tmp_path) -> list[float]:
    """A member's scores of FILE from `rewardlab score`, chosen then rejected per row."""
    out = tmp_path / f"m{abs(hash(str(spec)))}.jsonl"
    assert cli("score", spec, file, "-o", out)[0] == 0
    return [v for r in read_jsonl(out) for v in (r["chosen_score"], r["rejected_score"])]


def by_hand(z: list[list[float]], method: str, lam: float = 0.5) -> list[float]:
    """Aggregate z-scores per item (lists of member z's) without torch."""
    out = []
    for zs in z:
        mean = sum(zs) / len(zs)
        if method == "mean":
            out.append(mean)
        elif method == "wco":
            out.append(min(zs))
        else:
            out.append(mean - lam * sum((v - mean) ** 2 for v in zs) / len(zs))
    return out


def test_uncalibrated_members_exit_2_naming_them(cli, world, members, tmp_path):
    out = tmp_path / "out.jsonl"
    assert cli("calibrate", members[0], "--data", world / "ref.jsonl")[0] == 0  # only rm0 has stats
    code, _, err = cli("score", f"ensemble:mean:{members[0]},{members[1]}", world / "pairs.jsonl", "-o", out)
    assert code == 2 and f"member(s) {members[1]} have no" in err and "rewardlab calibrate" in err
    assert not out.exists()
    code, _, err = cli("score", members[0], world / "pairs.jsonl", "-o", out, "--reference", world / "ref.jsonl")
    assert code == 2 and "ensemble specs only" in err


@pytest.mark.parametrize("method, lam", [("wco", 0.5), ("uwo", 0.1), ("mean", 0.5)])
def test_score_uses_each_members_manifest_stats(cli, world, members, tmp_path, method, lam):
    for m in members:
        assert cli("calibrate", m, "--data", world / "ref.jsonl")[0] == 0
    head = f"uwo={lam}" if method == "uwo" else method
    out = tmp_path / "ens.jsonl"
    code, _, err = cli("score", f"ensemble:{head}:{members[0]},{members[1]}", world / "pairs.jsonl", "-o", out)
    assert code == 0, err
    stats = [json.loads((m / "rewardlab.json").read_text())["normalization"] for m in members]
    assert all(f"mean {s['mean']:.6g} std {s['std']:.6g}" in err for s in stats)  # stated
    assert "different reference sets" not in err
    raw = [member_scores(cli, m, world / "pairs.jsonl", tmp_path) for m in members]
    z = [[(raw[j][i] - stats[j]["mean"]) / stats[j]["std"] for j in range(2)] for i in range(len(raw[0]))]
    got = [v for r in read_jsonl(out) for v in (r["chosen_score"], r["rejected_score"])]
    assert got == pytest.approx(by_hand(z, method, lam), abs=1e-5)
    unstandardized = by_hand([[raw[0][i], raw[1][i]] for i in range(len(raw[0]))], method, lam)
    assert got != pytest.approx(unstandardized, abs=1e-3)  # the stats did change the result


def test_reference_file_standardizes_every_member_on_it(cli, world, members, tmp_path):
    out = tmp_path / "ens.jsonl"
    spec = f"ensemble:wco:{members[0]},{members[1]}"
    code, _, err = cli("score", spec, world / "pairs.jsonl", "-o", out, "--reference", world / "ref.jsonl")
    assert code == 0 and "32 responses of" in err, err
    ref = [pstats(member_scores(cli, m, world / "ref.jsonl", tmp_path)) for m in members]
    raw = [member_scores(cli, m, world / "pairs.jsonl", tmp_path) for m in members]
    z = [[(raw[j][i] - ref[j][0]) / ref[j][1] for j in range(2)] for i in range(len(raw[0]))]
    got = [v for r in read_jsonl(out) for v in (r["chosen_score"], r["rejected_score"])]
    assert got == pytest.approx(by_hand(z, "wco"), abs=1e-5)


def test_members_calibrated_on_different_sets_are_warned_about(cli, world, members, tmp_path):
    assert cli("calibrate", members[0], "--data", world / "ref.jsonl")[0] == 0
    assert cli("calibrate", members[1], "--data", world / "pairs.jsonl")[0] == 0
    code, _, err = cli("score", f"ensemble:mean:{members[0]},{members[1]}", world / "pairs.jsonl", "-o",
                       tmp_path / "o.jsonl")
    assert code == 0 and "different reference sets" in err


def test_k_output_member_uses_per_output_stats(cli, world, tmp_path):
    from rewardlab.rewards.registry import load_reward

    k2 = shutil.copytree(world / "k2", tmp_path / "k2")
    rm0 = shutil.copytree(world / "rm0", tmp_path / "rm0")
    for d in (k2, rm0):
        assert cli("calibrate", d, "--data", world / "ref.jsonl")[0] == 0
    ens = load_reward(f"ensemble:wco:{k2},{rm0}", device="cpu")
    norm = json.loads((k2 / "rewardlab.json").read_text())["normalization"]["outputs"]
    n0 = json.loads((rm0 / "rewardlab.json").read_text())["normalization"]
    assert ens.means.tolist() == pytest.approx(norm["mean"] + [n0["mean"]])
    assert ens.stds.tolist() == pytest.approx(norm["std"] + [n0["std"]])
    p, r = responses_of(world / "pairs.jsonl")
    z = ens.score_members(p, r)
    assert z.shape == (48, 3) and torch.allclose(ens.score(p, r), z.min(1).values)
    ref_z = ens.score_members(*responses_of(world / "ref.jsonl"))  # standardized on their own reference set
    assert torch.allclose(ref_z.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(ref_z.std(0, unbiased=False), torch.ones(3), atol=1e-4)


class Stated:
    """A member with a manifest-like normalization."""

    num_outputs = 1

    def __init__(self, norm):
        self.normalization, self.name = norm, "stated"

    def score(self, prompts, responses):
        return torch.tensor([float(len(r)) for r in responses])


def test_member_stats_rules():
    assert member_stats(FunctionReward(lambda p, r: 1.0)) is None
    assert member_stats(Stated({"mean": 1.0, "std": 2.0, "n": 5})) == ([1.0], [2.0])
    for bad in ({"mean": 1.0, "std": 0.0}, {"mean": "x", "std": 1.0}, {"mean": float("inf"), "std": 1.0}):
        with pytest.raises(UserError, match="stated"):
            member_stats(Stated(bad))
    ens = EnsembleReward([Stated({"mean": 1.0, "std": 2.0}), Stated({"mean": 3.0, "std": 0.5})], "wco")
    assert ens.stats_from == "manifests"
    assert ens.score([""] * 2, ["abc", "a"]).tolist() == [min(1.0, 0.0), min(0.0, -4.0)]  # z: (1, 0) and (0, -4)
    length = FunctionReward(lambda p, r: float(len(r)), name="len")
    half = EnsembleReward([Stated({"mean": 1.0, "std": 2.0}), length], "mean")
    assert half.means is None and half.missing_stats() == ["len"]
    with pytest.raises(UserError, match="len"):
        ready_for_scoring(half, "ensemble:mean:a,len")
    assert ready_for_scoring(FunctionReward(lambda p, r: 0.0), "python:x:f") == []
