"""`rewardlab inspect --rotate`: at most --show groups and --show items per ranking are printed, each item named by
its row (id, else L<line>) and tag; the rankings themselves are checked by hand against the attribute scores."""

import json

from rewardlab.rewards.inspection import inspect_reward
from rewardlab.rewards.registry import load_reward
from tests.rewards.test_multiobjective import armo_dir, synthetic  # noqa: F401 -- the module-scoped fixture


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rotate_respects_show_and_names_rows(cli, armo_dir, tmp_path):  # noqa: F811
    out, _, _, _ = armo_dir
    rated, pairs = synthetic(40, 30, seed=5)
    _write(tmp_path / "rated.jsonl", [{"prompt": r.prompt, "response": r.response, "attributes": r.attributes}
                                      for r in rated])
    _write(tmp_path / "pairs.jsonl", [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
                                      | ({"id": f"p{i}"} if i % 2 else {}) for i, p in enumerate(pairs)])
    # rated rows, each prompt once: one pooled group of 40 items; only the 3 best are printed per angle
    code, text, err = cli("inspect", out, tmp_path / "rated.jsonl", "--rotate", "helpfulness,verbosity",
                          "--show", "3", "--angles", "3")
    assert code == 0, err
    assert "… +37" in text and "all items are ranked together" in text
    assert "L1:response" in text or "L2:response" in text  # rows named by their line
    assert len(text.splitlines()) < 40, text  # was one line per item tag, wrapped (170 lines for a real file)
    # pairs: one group per prompt; 3 groups of the 30 printed, items named by id or line
    code, text, err = cli("inspect", out, tmp_path / "pairs.jsonl", "--rotate", "helpfulness,verbosity",
                          "--show", "3", "--angles", "3")
    assert code == 0, err
    assert "for 30 prompt groups" not in text  # the count line says how many of how many
    assert "(3 shown)" in text and "L1:chosen" in text and "p1:" in text
    assert len(text.splitlines()) < 40, text


def test_rotation_rankings_by_hand(armo_dir, tmp_path):  # noqa: F811
    out, _, _, pairs = armo_dir
    _write(tmp_path / "pairs.jsonl", [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
                                      for p in pairs[:4]])
    res = inspect_reward(str(out), tmp_path / "pairs.jsonl", rotate="helpfulness,verbosity", angles=3,
                         device="cpu")
    assert res.rotation is not None and not res.rotation.pooled and res.rotation.thetas == [-90, 0, 90]
    raw = load_reward(str(out)).attributes([pairs[0].prompt] * 2, [pairs[0].chosen, pairs[0].rejected])
    # θ = 0: ranked by helpfulness alone; θ = 90: by verbosity; θ = −90: by −verbosity
    by = {0: raw[:, 0], 90: raw[:, 1], -90: -raw[:, 1]}
    prompt, ranks = res.rotation.groups[0]
    assert prompt == pairs[0].prompt
    for theta, ranking in zip(res.rotation.thetas, ranks, strict=True):
        s = by[int(theta)]
        best_first = ["L1:chosen", "L1:rejected"] if s[0] >= s[1] else ["L1:rejected", "L1:chosen"]
        assert ranking == best_first
