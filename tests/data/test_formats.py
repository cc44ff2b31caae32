"""File formats: DatasetDict splits, JSON arrays, gzip, a UTF-8 byte-order mark."""

import gzip
import json

import pytest

from rewardlab.data.load import iter_pairs, load_pairs, load_rows
from rewardlab.errors import UserError

ROWS = [{"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"} for i in range(3)]


@pytest.fixture(scope="module")
def dsdict(tmp_path_factory):
    import datasets

    path = tmp_path_factory.mktemp("ds") / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:2]),
                          "test": datasets.Dataset.from_list(ROWS[2:])}).save_to_disk(path)
    return path


def test_datasetdict_says_which_split_it_uses_and_takes_split(dsdict, capsys, cli):
    assert [p.prompt for p in load_pairs(dsdict)] == ["q0", "q1"]
    assert (f"{dsdict}: DatasetDict with splits train, test: using split 'train' (choose with --split)"
            in capsys.readouterr().err)
    assert [p.prompt for p in load_pairs(dsdict, split="test")] == ["q2"]
    assert [p.prompt for p in iter_pairs(dsdict, split="test")] == ["q2"]
    code, out, _ = cli("data", "validate", dsdict, "--split", "test")
    assert code == 0 and f"{dsdict}: using split 'test'" in out and f"{dsdict}: 1 rows OK" in out
    code, out, _ = cli("data", "stats", dsdict, "--split", "test")
    assert code == 0 and f"{dsdict}: 1 rows, schema pair-plain" in out
    code, _, err = cli("data", "validate", dsdict, "--split", "dev")
    assert code == 2 and err.strip() == f"{dsdict}:1: no split 'dev' in this DatasetDict (splits: train, test)"


def test_split_needs_a_datasetdict_and_one_is_chosen_without_train(tmp_path):
    import datasets

    plain = tmp_path / "d.jsonl"
    plain.write_text(json.dumps(ROWS[0]) + "\n")
    with pytest.raises(UserError, match=r"d.jsonl:1: --split test given, but this file has no splits"):
        load_rows(plain, split="test")
    two = tmp_path / "two"
    datasets.DatasetDict({"a": datasets.Dataset.from_list(ROWS[:1]),
                          "b": datasets.Dataset.from_list(ROWS[1:])}).save_to_disk(two)
    with pytest.raises(UserError, match=r"two:1: DatasetDict without a 'train' split: choose one of a, b with "):
        load_rows(two)
    one = tmp_path / "one"
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(ROWS)}).save_to_disk(one)
    assert len(load_rows(one)) == 3


def test_json_array_files_number_rows_from_one(tmp_path, cli):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([ROWS[0], ROWS[1], {"prompt": "q", "chosen": "a"}], indent=2))
    code, _, err = cli("data", "validate", path)
    assert code == 2 and err.splitlines()[0] == f"{path}:3: field 'rejected' missing"
    path.write_text(json.dumps(ROWS))
    assert [p.prompt for p in load_pairs(path)] == ["q0", "q1", "q2"]
    lines = tmp_path / "lines.json"  # what Dataset.to_json writes: JSON lines under a .json name
    lines.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert len(load_pairs(lines)) == 3
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"prompt": "q",\n')
    code, _, err = cli("data", "validate", broken)
    assert code == 2 and err.splitlines() == [f"{broken}:3: truncated or invalid JSON: Expecting property name "
                                              "enclosed in double quotes at column 1"]
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 10_000 + "]" * 10_000)
    code, _, err = cli("data", "validate", deep)
    assert code == 2 and err.startswith(f"{deep}:1: JSON nested too deeply")
    scalar = tmp_path / "scalar.json"
    scalar.write_text('[1, {"prompt": "q", "chosen": "a", "rejected": "b"}]')
    assert load_rows(scalar, skip_invalid=True)[0].prompt == "q"


def test_a_json_file_holding_one_object_is_refused_as_a_whole(tmp_path, cli):
    """json.dump(..., indent=2) of {"data": [rows]} or of one row (was one 'invalid JSON' error per line)."""
    wrapped = tmp_path / "wrapped.json"
    text = json.dumps({"data": ROWS, "version": 1}, indent=2).replace("\n", "\r\n")
    wrapped.write_bytes(b"\xef\xbb\xbf" + text.encode())  # with a BOM and CRLF line ends
    code, _, err = cli("data", "validate", wrapped)
    assert code == 2 and err.splitlines() == [
        f"{wrapped}:1: this JSON file is one object (keys 'data', 'version'), not a list of rows or one row per line; "
        "its rows seem to be under 'data': write them one per line (e.g. jq -c '.data[]')"]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(ROWS[0], indent=2))
    code, _, err = cli("data", "stats", one)
    assert code == 2 and err == (f"{one}:1: this JSON file is one object (keys 'prompt', 'chosen', 'rejected'), not a "
                                 "list of rows or one row per line\n")
    broken = tmp_path / "broken.json"  # not one object either: each line is reported as before
    broken.write_text('{\n"prompt": "q"\n')
    code, _, err = cli("data", "validate", broken)
    assert code == 2 and err.splitlines()[:2] == [
        f"{broken}:1: truncated or invalid JSON: Expecting property name enclosed in double quotes at column 2",
        f"{broken}:2: truncated or invalid JSON: Extra data at column 9"]


def test_gzip_and_bom(tmp_path, cli):
    gz = tmp_path / "d.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    assert [p.prompt for p in load_pairs(gz)] == ["q0", "q1", "q2"]
    assert [p.prompt for p in iter_pairs(gz)] == ["q0", "q1", "q2"]
    gz_array = tmp_path / "d.json.gz"
    gz_array.write_bytes(gzip.compress(b"\xef\xbb\xbf" + json.dumps(ROWS).encode()))
    assert len(load_pairs(gz_array)) == 3
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gz.read_bytes()[:-12])  # truncated gzip stream
    code, _, err = cli("data", "validate", cut)
    assert code == 2 and err.startswith(f"{cut}:") and "cannot read the file" in err
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in ROWS).encode())
    assert [p.prompt for p in load_pairs(bom)] == ["q0", "q1", "q2"]
    bom_later = tmp_path / "bom2.jsonl"  # a BOM is only a BOM at the start of the file
    bom_later.write_bytes(json.dumps(ROWS[0]).encode() + b"\n\xef\xbb\xbf" + json.dumps(ROWS[1]).encode() + b"\n")
    with pytest.raises(UserError, match=r"bom2.jsonl:2: truncated or invalid JSON"):
        load_pairs(bom_later)
