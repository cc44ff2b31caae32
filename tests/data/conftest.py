import json


def write_rows(path, rows):
    """Write JSONL: dicts are json.dumps'ed (surrogates escaped as \\udXXX), str/bytes lines are written as is."""
    lines = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode("utf-8") for r in rows]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path
