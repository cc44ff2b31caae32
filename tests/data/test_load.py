import json
import subprocess
import sys

import pytest

from rewardlab.data.load import load_kway, load_pairs, load_prompts, load_rated, load_rows
from rewardlab.data.records import KWayRow, PreferencePair
from rewardlab.errors import UserError


def write_lines(path, lines):
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def problems_of(path, **kw):
    with pytest.raises(UserError) as e:
        load_rows(path, **kw)
    return e.value.problems


def test_schemas_load(tmp_path):
    plain = write_lines(tmp_path / "p.jsonl", [json.dumps({"prompt": "q", "chosen": "a", "rejected": "b",
                                                           "margin": 1.5, "subset": "s", "id": 7})])
    (pair,) = load_pairs(plain)
    assert pair == PreferencePair("q", "a", "b", margin=1.5, subset="s", id="7")
    assert str(pair.source) == f"{plain}:1"
    implicit = write_lines(tmp_path / "i.jsonl", [json.dumps({"chosen": "q a", "rejected": "q b"})])
    assert (load_pairs(implicit)[0].prompt, load_pairs(implicit)[0].chosen) == ("q", " a")  # TRL's extract_prompt
    conv = {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
            "rejected": [{"role": "assistant", "content": "go away"}]}
    assert load_pairs(write_lines(tmp_path / "c.jsonl", [json.dumps(conv)]))[0].chosen[0]["content"] == "hello"
    kway = write_lines(tmp_path / "k.jsonl", [json.dumps({"prompt": "q", "chosen": ["a"], "rejected": ["b", "c", "d"],
                                                          "subset": "math"})])
    (row,) = load_kway(kway)
    assert isinstance(row, KWayRow) and row.rejected == ["b", "c", "d"]
    rated = write_lines(tmp_path / "r.jsonl", [json.dumps({"prompt": "q", "response": "a",
                                                           "attributes": {"helpfulness": 3, "verbosity": 1.5}})])
    assert load_rated(rated)[0].attributes == {"helpfulness": 3.0, "verbosity": 1.5}


def test_every_problem_reported_with_file_and_line(tmp_path):
    good = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})
    path = write_lines(tmp_path / "bad.jsonl", [
        good,
        '{"prompt": "q", "chosen": "a", "rejec',                         # 2 truncated JSON
        json.dumps({"prompt": "q", "chosen": "a"}),                      # 3 missing field
        json.dumps({"prompt": "q", "chosen": None, "rejected": "b"}),    # 4 null
        json.dumps({"prompt": "q", "chosen": 5, "rejected": "b"}),       # 5 wrong type
        json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"}),  # 6 identical
        b'{"prompt": "q", "chosen": "\xff\xfe", "rejected": "b"}',       # 7 invalid UTF-8
        json.dumps({"chosen": "a", "rejected": "b"}),                    # 8 schema mixed (implicit prompt)
        json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}),  # 9 bad margin
        good,
    ])
    p = problems_of(path)
    expected = {2: "truncated or invalid JSON", 3: "field 'rejected' missing", 4: "field 'chosen' is null",
                5: "field 'chosen' must be a string", 6: "chosen and rejected are identical", 7: "invalid UTF-8",
                8: "schemas mixed", 9: "field 'margin'"}
    assert len(p) == len(expected)
    for line, text in expected.items():
        assert any(msg.startswith(f"{path}:{line}: ") and text in msg for msg in p), (line, p)


def test_empty_file_and_line_limit(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert problems_of(empty) == [f"{empty}:1: file is empty (no rows)"]
    long = write_lines(tmp_path / "long.jsonl", [json.dumps({"prompt": "q", "chosen": "a" * 500, "rejected": "b"})])
    (msg,) = problems_of(long, max_line_bytes=100)
    assert msg.startswith(f"{long}:1: line is") and "over the limit of 100" in msg


def test_skip_invalid_counts_and_reports(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}), "{oops"])
    rows = load_rows(path, skip_invalid=True, skipped_report=tmp_path / "skipped.txt")
    assert len(rows) == 1
    assert (tmp_path / "skipped.txt").read_text().startswith(f"{path}:2: ")


def test_parquet_and_datasets_dir(tmp_path):
    import datasets

    rows = [{"prompt": "q1", "chosen": "a", "rejected": "b"}, {"prompt": "q2", "chosen": "c", "rejected": "c"}]
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(tmp_path / "d.parquet")
    ds.save_to_disk(tmp_path / "ds")
    for path in (tmp_path / "d.parquet", tmp_path / "ds"):
        assert problems_of(path) == [f"{path}:2: chosen and rejected are identical"]
    datasets.Dataset.from_list(rows[:1]).to_parquet(tmp_path / "ok.parquet")
    assert load_pairs(tmp_path / "ok.parquet")[0].prompt == "q1"


def test_load_prompts_dedups(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({"prompt": "a"}), json.dumps({"prompt": "b"}),
                                              json.dumps({"prompt": "a", "chosen": "x", "rejected": "y"})])
    assert load_prompts(path) == ["a", "b"]


def test_cli_validate_exit_2_one_line_per_problem(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps({"prompt": "q", "chosen": "a"}), "{"])
    proc = subprocess.run([sys.executable, "-m", "rewardlab.cli", "data", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[:2] == [f"{path}:1: field 'rejected' missing",
                         f"{path}:2: truncated or invalid JSON: Expecting property name enclosed in double quotes "
                         "at column 2"]
    assert len(lines) == 3 and "--skip-invalid" in lines[2]
    assert "Traceback" not in proc.stderr


def test_load_prompts_of_implicit_prompt_rows(tmp_path):
    hh = [{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"},
          {"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: no"},
          {"chosen": "abc", "rejected": "xyz"}]
    path = write_lines(tmp_path / "hh.jsonl", [json.dumps(r) for r in hh])
    with pytest.raises(UserError) as e:
        load_prompts(path)
    assert e.value.problems == [f"{path}:3: row has no prompt ('prompt' empty, or chosen and rejected share no "
                                "start)"]
    write_lines(path, [json.dumps(r) for r in hh[:2]])
    assert load_prompts(path) == ["\n\nHuman: hi\n\nAssistant:"]


def test_cli_validate_reports_unreadable_files_with_the_others(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"prompt": "q", "chosen": "a"})])
    good = write_lines(tmp_path / "good.jsonl", [json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})])
    missing = tmp_path / "missing.jsonl"
    proc = subprocess.run([sys.executable, "-m", "rewardlab.cli", "data", "validate", str(missing), str(bad),
                           str(good)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[:2] == [f"{missing}: no such file or directory",
                                            f"{bad}:1: field 'rejected' missing"]
    assert f"{good}: 1 rows OK (pair-plain)" in proc.stdout


def test_ids_written_by_pandas_as_floats_are_integers(tmp_path):
    """pandas stores an int id column with a null as float64 (3.0, NaN): integral floats are the integer ids."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"prompt": ["q", "q", "q"], "chosen": ["a", "b", "c"], "rejected": ["x", "y", "z"],
                             "id": [3.0, None, 10.0]}), path)
    assert [p.id for p in load_pairs(path)] == ["3", None, "10"]
    pq.write_table(pa.table({"prompt": ["q"], "chosen": ["a"], "rejected": ["x"], "id": [2.5]}), path)
    with pytest.raises(UserError) as e:
        load_pairs(path)
    assert e.value.problems[0] == f"{path}:1: field 'id' must be a string or an integer, got float 2.5"
