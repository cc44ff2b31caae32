import json
import sys

import pytest


def write_rows(path, rows):
    """Write JSONL: dicts are json.dumps'ed (surrogates escaped as \\udXXX), str/bytes lines are written as is."""
    lines = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode("utf-8") for r in rows]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `rewardlab ARGS` in-process through rewardlab.cli.main; returns (exit code, stdout, stderr).

    An exception other than SystemExit (a traceback for the user) propagates and fails the test.
    """
    from rewardlab.cli import main

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()  # only this command's output
        monkeypatch.setattr(sys, "argv", ["rewardlab", *map(str, args)])
        with pytest.raises(SystemExit) as e:
            main()
        out = capsys.readouterr()
        return e.value.code or 0, out.out, out.err

    return run
