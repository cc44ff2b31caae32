"""`rewardlab score --engine ray` on a local Ray cluster (CPU, 2 actors): the local engine's records and scores (to
1e-6) in input order, JSONL and Parquet in and out, bad input as FILE:LINE before Ray, actor UserErrors exit 2."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.errors import UserError

ray = pytest.importorskip("ray")
from tests.ray_cluster import ray_cluster  # noqa: E402, F401 (the module's local Ray cluster)

uses_ray = pytest.mark.usefixtures("ray_cluster")

WORDS = "the cat dog sat on a mat big small red blue good bad".split()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A transformers GPT-2 reward model built from config, a rewardlab checkpoint, pairs and k-way rows."""
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model, train_tiny_tokenizer
    from tests.models.hf_families import save_family

    d = tmp_path_factory.mktemp("ray-score")
    rng = random.Random(0)

    def s(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    # ids: strings, numbers and none (pyarrow's JSON reader refuses such a column); varied lengths for the buckets
    pairs = [{"prompt": s(6), "chosen": s(rng.randint(1, 50)), "rejected": s(rng.randint(1, 50)),
              **({} if i % 7 == 3 else {"id": i if i % 2 else f"p{i}"})} for i in range(300)]
    text = "".join(json.dumps(r, ensure_ascii=False) + ("\n\n" if i == 100 else "\n") for i, r in enumerate(pairs))
    (d / "pairs.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())  # a BOM and a blank line, as the local reader
    save_family("gpt2", [r["chosen"] for r in pairs], d / "gpt2")
    tok = train_tiny_tokenizer([r["chosen"] for r in pairs[:200]], vocab_size=128)
    for seed in (0, 1):
        save_reward_model(tiny_reward_model(tok, seed=seed, n_layer=1, n_embd=32), tok, d / f"rm{seed}",
                          manifest={"max_length": 128})
    import pyarrow as pa
    import pyarrow.parquet as pq

    kway = [{"id": f"k{i}", "prompt": s(5), "chosen": [s(rng.randint(1, 30)) for _ in range(2)],
             "rejected": [s(rng.randint(1, 30)) for _ in range(3)]} for i in range(120)]
    pq.write_table(pa.Table.from_pylist(kway), d / "kway.parquet", row_group_size=50)
    return d


def score(*args) -> tuple[int, str, BaseException | None]:
    res = CliRunner().invoke(app, ["score", *map(str, args)])
    return res.exit_code, res.output, res.exception


def records(path) -> list[dict]:
    if str(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same(ray_recs: list[dict], local_recs: list[dict], tol: float = 1e-6) -> None:
    """Same rows in the same order with the same ids and score keys; every score within ``tol``."""
    assert len(ray_recs) == len(local_recs)
    for a, b in zip(ray_recs, local_recs, strict=True):
        a = {k: v for k, v in a.items() if not (k == "id" and v is None)}  # Parquet: null id = no id
        assert a.keys() == b.keys() and a.get("id") == b.get("id")
        for k in a.keys() - {"id"}:
            assert a[k] == pytest.approx(b[k], abs=tol), (a, b)


@uses_ray
def test_pairs_jsonl_on_two_actors_equal_the_local_engine(world, tmp_path):
    args = [world / "gpt2", world / "pairs.jsonl", "--batch-size", "8", "--chunk-rows", "40"]
    assert score(*args, "-o", tmp_path / "local.jsonl")[0] == 0
    code, out, exc = score(*args, "-o", tmp_path / "ray.jsonl", "--engine", "ray", "--num-replicas", "2")
    assert code == 0, (out, exc)
    assert "scored 300 rows" in out
    ray_recs, local_recs = records(tmp_path / "ray.jsonl"), records(tmp_path / "local.jsonl")
    assert_same(ray_recs, local_recs)
    assert [r.get("id") for r in ray_recs][:4] == ["p0", "1", "p2", None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.jsonl", "ray.jsonl"]  # no temp file left


@uses_ray
def test_kway_parquet_to_parquet_equal_the_local_engine_and_another_model_differs(world, tmp_path):
    data = world / "kway.parquet"
    assert score(world / "rm0", data, "-o", tmp_path / "local.jsonl")[0] == 0
    assert score(world / "rm1", data, "-o", tmp_path / "other.jsonl")[0] == 0
    code, out, exc = score(world / "rm0", data, "-o", tmp_path / "ray.parquet", "--engine", "ray", "--num-replicas",
                           "2", "--chunk-rows", "32")
    assert code == 0, (out, exc)
    ray_recs = records(tmp_path / "ray.parquet")
    assert [len(r["chosen_scores"]) for r in ray_recs] == [2] * 120
    assert_same(ray_recs, records(tmp_path / "local.jsonl"))
    with pytest.raises(AssertionError):  # the comparison can fail: another model's scores
        assert_same(ray_recs, records(tmp_path / "other.jsonl"))


def test_bad_row_is_the_local_file_line_error_before_any_ray_work(world, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    out = tmp_path / "o.jsonl"
    local = score(world / "rm0", bad, "-o", out)[2]
    code, _, exc = score(world / "rm0", bad, "-o", out, "--engine", "ray")
    assert code == 1 and isinstance(exc, UserError)  # CliRunner: main() would print it and exit 2
    assert exc.lines() == local.lines() and exc.lines()[0].startswith(f"{bad}:2: ")
    assert not out.exists()


def test_flags_checked_and_json_arrays_refused(world, tmp_path):
    code, _, exc = score(world / "rm0", world / "pairs.jsonl", "-o", tmp_path / "o.jsonl", "--engine", "spark",
                         "--num-replicas", "0", "--num-gpus-per-replica", "-1")
    assert exc.lines() == ["--num-replicas must be >= 1, got 0", "--engine must be local or ray, got 'spark'",
                           "--num-gpus-per-replica must be >= 0, got -1.0"]
    arr = tmp_path / "rows.json"
    arr.write_text(json.dumps([{"prompt": "a", "chosen": "b", "rejected": "c"}]))
    assert score(world / "rm0", arr, "-o", tmp_path / "o.jsonl")[0] == 0  # the local engine reads it
    exc = score(world / "rm0", arr, "-o", tmp_path / "r.jsonl", "--engine", "ray")[2]
    assert isinstance(exc, UserError) and exc.lines()[0].startswith(f"{arr}:1: --engine ray reads JSONL and Parquet")


@uses_ray
def test_a_user_error_in_the_actors_reaches_the_cli(world, tmp_path):
    from rewardlab.rewards.registry import load_reward

    spec = "rule:nosuchrule"
    with pytest.raises(UserError) as local:
        load_reward(spec)
    code, _, exc = score(spec, world / "pairs.jsonl", "-o", tmp_path / "o.jsonl", "--engine", "ray")
    assert isinstance(exc, UserError) and exc.lines() == local.value.lines()
    assert list(tmp_path.iterdir()) == []


def test_remote_user_error_marks_survive_text_and_batch_dependent_rewards_are_refused():
    from rewardlab.rewards.ray_engine import check_batch_invariant, remote_user_error, user_error_from

    text = f"Traceback ...\nRuntimeError: {remote_user_error(UserError('a: bad', 'b: worse'))}\n(pid=1)"
    assert user_error_from("no mark here", text).lines() == ["a: bad", "b: worse"]
    assert user_error_from("RuntimeError: something else") is None

    class Invariant:
        pass

    class Dependent:
        batch_invariant = False

    check_batch_invariant("x", Invariant())
    with pytest.raises(UserError, match="not batch-invariant"):
        check_batch_invariant("judge:x", Dependent())
