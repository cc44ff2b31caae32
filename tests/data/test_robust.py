"""Inputs that used to raise tracebacks or flood the terminal: deep nesting, huge integers, lone surrogates, JSON
syntax errors, over-long lines, 50,000 bad rows."""

import json
import subprocess
import sys
import textwrap

import pytest

from rewardlab.data.load import MAX_SHOWN, load_file, load_pairs
from rewardlab.errors import UserError
from tests.data.conftest import write_rows

GOOD = {"prompt": "q", "chosen": "a", "rejected": "b"}


def test_hostile_json_values_are_named_errors(tmp_path, cli):
    deep = "[" * 10_000 + "]" * 10_000
    huge = "1" * 5_000
    path = write_rows(tmp_path / "d.jsonl", [
        GOOD,
        '{"prompt": "q", "chosen": "a", "rejected": ' + deep + "}",         # 2 RecursionError in json
        '{"prompt": "q", "chosen": "a", "rejected": "b", "margin": ' + huge + "}",  # 3 ValueError (int digit limit)
        {"prompt": "q", "chosen": "a\ud800", "rejected": "b"},              # 4 lone surrogate (json.dumps: \\ud800)
        {"prompt": [{"role": "user", "content": "\udfff"}], "chosen": "a", "rejected": "b"},  # 5
        {"prompt": "q", "chosen": "a", "rejected": "b", "id": "x\ud800"},  # 6
        '{"prompt": "a\tb", "chosen": "a", "rejected": "b"}',              # 7 raw tab: "Invalid control character at"
        '{"prompt": "q", "chosen": "a", "rejected": "b',                    # 8 "Unterminated string starting at"
        '{"prompt": "q", "chosen": "a", "rejected": "b", "id": ' + huge + "}",  # 9
    ])
    code, _, err = cli("data", "validate", path)
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == f"{path}:2: JSON nested too deeply (Python's parser stops at about 1000 levels)"
    assert lines[1] == f"{path}:3: field 'margin' must be a finite number, got an integer with 5000 digits"
    assert lines[2].startswith(f"{path}:4: field 'chosen' holds a lone surrogate '\\ud800' at character 1")
    assert lines[3].startswith(f"{path}:5: field 'prompt[0].content' holds a lone surrogate '\\udfff'")
    assert lines[4].startswith(f"{path}:6: field 'id' holds a lone surrogate")
    assert lines[5] == f"{path}:7: truncated or invalid JSON: Invalid control character at column 14"
    assert lines[6] == f"{path}:8: truncated or invalid JSON: Unterminated string starting at column 44"
    assert lines[7] == f"{path}:9: field 'id' must be a string, got an integer with 5000 digits"
    assert len(lines) == 9 and "--skip-invalid" in lines[8]
    assert "at at" not in err


def test_surrogates_in_implicit_and_kway_texts(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"chosen": "x\ud800", "rejected": "y"}])
    with pytest.raises(UserError, match=r"d.jsonl:1: field 'chosen' holds a lone surrogate"):
        load_pairs(path)
    path = write_rows(tmp_path / "k.jsonl", [{"prompt": "q", "chosen": ["a"], "rejected": ["b", "\ud800"]}])
    assert load_file(path).problems[0].endswith("1: field 'rejected[1]' holds a lone surrogate '\\ud800' at "
                                                "character 0 (not valid Unicode text)")


def test_long_line_is_skipped_without_reading_it_whole(tmp_path):
    limit = 1_000
    long_row = json.dumps({"prompt": "q", "chosen": "a" * 5_000, "rejected": "b"})
    path = write_rows(tmp_path / "d.jsonl", [GOOD, long_row, {"prompt": "r", "chosen": "c", "rejected": "d"}])
    report = load_file(path, max_line_bytes=limit)
    assert report.problems == [f"{path}:2: line is {len(long_row)} bytes, over the limit of {limit}"]
    assert [r.source.line for r in report.rows] == [1, 3]
    exact = write_rows(tmp_path / "exact.jsonl", [json.dumps({"prompt": "q", "chosen": "a" * 10, "rejected": "b"})])
    size = exact.stat().st_size - 1
    assert load_file(exact, max_line_bytes=size).problems == []
    assert load_file(exact, max_line_bytes=size - 1).problems[0].endswith(f"line is {size} bytes, over the limit "
                                                                           f"of {size - 1}")


# VmHWM (peak RSS of this process image), not getrusage's ru_maxrss: Linux folds the parent's peak into ru_maxrss
# across fork + exec, so a child of a pytest process that imported torch starts with a ~200 MB "peak".
PEAK_RSS = textwrap.dedent("""
    import sys
    from rewardlab.data.load import load_file
    def status_kb(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])
    before = status_kb("VmRSS:")
    report = load_file(sys.argv[1], max_line_bytes=int(sys.argv[2]))
    assert len(report.problems) == 1 and "over the limit" in report.problems[0], report.problems
    print((status_kb("VmHWM:") - before) * 1024)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_30mb_line_without_newline_costs_at_most_about_twice_the_limit(tmp_path):
    limit = 4 * 1024 * 1024
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"prompt": "q", "chosen": "')
        for _ in range(30):
            f.write(b"a" * (1 << 20))  # 30 MB, no newline at all
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path), str(limit)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    grew = int(proc.stdout)
    assert grew < 2 * limit + (2 << 20), f"peak RSS grew by {grew / 2**20:.1f} MiB for a {limit / 2**20:.0f} MiB limit"


def test_50000_bad_rows_print_a_capped_list_but_all_are_counted_and_reported(tmp_path, cli):
    n = 50_000
    path = write_rows(tmp_path / "d.jsonl", [json.dumps(GOOD)] + ['{"prompt": "q", "chosen": "a"}'] * n)
    with pytest.raises(UserError) as e:
        load_pairs(path)
    assert len(e.value.problems) == n
    shown = e.value.lines()
    assert shown[:MAX_SHOWN] == e.value.problems[:MAX_SHOWN] and len(shown) == MAX_SHOWN + 1
    assert shown[-1] == (f"... and {n - MAX_SHOWN} more problems ({n} in all); run `rewardlab data validate {path}` "
                         "to list them all, or use --skip-invalid to skip invalid rows (each skipped row is counted "
                         "and listed in a report)")
    code, _, err = cli("data", "validate", path)
    assert code == 2 and len(err.splitlines()) == MAX_SHOWN + 1 and "--max-errors 0" in err.splitlines()[-1]
    code, _, err = cli("data", "validate", path, "--max-errors", "0")
    lines = err.splitlines()
    assert code == 2 and len(lines) == n + 1 and lines[n - 1] == f"{path}:{n + 1}: field 'rejected' missing"
    assert "--skip-invalid" in lines[-1]
    pairs = load_pairs(path, skip_invalid=True, skipped_report=tmp_path / "skipped.txt")
    assert len(pairs) == 1
    assert (tmp_path / "skipped.txt").read_text().splitlines() == e.value.problems
