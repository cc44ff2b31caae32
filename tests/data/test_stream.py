import json

import pytest

from rewardlab.data.load import iter_pairs, load_pairs
from rewardlab.errors import UserError


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_iter_pairs_yields_what_load_pairs_returns(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}", "weight": i % 3} for i in range(7)]
    path = _write(tmp_path / "d.jsonl", rows)
    streamed = list(iter_pairs(path))
    assert streamed == load_pairs(path)
    assert [p.prompt for p in streamed] == [f"q{i}" for i in range(7)]
    assert [p.source.line for p in streamed] == list(range(1, 8))


def test_iter_pairs_raises_at_call_the_same_error_as_load_pairs(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, "{oops",
                                           {"prompt": "q", "chosen": "a"}])
    with pytest.raises(UserError) as loaded:
        load_pairs(path)
    with pytest.raises(UserError) as streamed:
        iter_pairs(path)  # no next(): validation happens before the first row is asked for
    assert streamed.value.problems == loaded.value.problems
    assert streamed.value.lines() == loaded.value.lines()
    assert [m.split(": ")[0] for m in streamed.value.problems] == [f"{path}:2", f"{path}:3"]


def test_iter_pairs_skip_invalid_writes_report_and_skips(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, "{oops",
                                         {"prompt": "r", "chosen": "c", "rejected": "d"}])
    it = iter_pairs(path, skip_invalid=True, skipped_report=tmp_path / "skipped.txt")
    assert (tmp_path / "skipped.txt").read_text().startswith(f"{path}:2: ")  # written by the validating pass
    assert [p.prompt for p in it] == ["q", "r"]


def test_iter_pairs_refuses_other_row_kinds_and_notices_a_changed_file(tmp_path):
    kway = _write(tmp_path / "k.jsonl", [{"prompt": "q", "chosen": ["a"], "rejected": ["b", "c"]}])
    with pytest.raises(UserError, match="expected preference"):
        iter_pairs(kway)
    path = _write(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    it = iter_pairs(path)
    _write(path, [{"prompt": "q", "chosen": "a", "rejected": "b"}] * 2)
    with pytest.raises(UserError, match="changed while reading"):
        list(it)
