"""Nothing lost with exit 0: every command that writes an output refuses, with exit 2 and before any work, a second
writer of the same output (an exclusive lock), an output that is one of its inputs, and an output it could not
write; `mixture-train` replaces an existing model only with --overwrite (rewardlab.io guards, per command)."""

import json
import os

import pytest

from rewardlab.io import lock_path, output_lock


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer):
    """A tiny reward checkpoint, 16 pairs, prompts and a stepwise (ProcessBench) file."""
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model

    d = tmp_path_factory.mktemp("guards")
    save_reward_model(tiny_reward_model(tokenizer, seed=0, n_layer=1, n_embd=32), tokenizer, d / "rm",
                      manifest={"max_length": 64})
    rows = [{"prompt": f"help me {i}", "chosen": "good answer yes", "rejected": "bad no", "id": str(i)}
            for i in range(16)]
    (d / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": r["prompt"]}) + "\n" for r in rows))
    (d / "pb.jsonl").write_text(json.dumps({"problem": "help", "steps": ["a", "b"], "label": -1,
                                            "final_answer_correct": True}) + "\n")
    return d


def held_message(flag: str, path) -> str:
    return (f"{flag} {path}: another rewardlab process (pid {os.getpid()}) is writing it (holds {lock_path(path)}); "
            f"wait for it to end or choose another {flag}")


# -- 1. one writer per output ------------------------------------------------------------------------------------

LOCKED = {  # command line (OUT: the locked output), flag named in the message
    "score": (["score", "{rm}", "{pairs}", "-o", "OUT"], "--output"),
    "train": (["train", "--data", "{pairs}", "-o", "OUT"], "--output"),
    "train-armo": (["train", "--objective", "armo", "--data", "{pairs}", "--rated", "{pairs}", "-o", "OUT"],
                   "--output"),
    "eval": (["eval", "{rm}", "--data", "{pairs}", "-o", "OUT"], "--output"),
    "eval-prm": (["eval-prm", "{rm}", "--data", "{pb}", "--report", "OUT"], "--report"),
    "optimize": (["optimize", "bon", "--policy", "tiny", "--reward", "{rm}", "--prompts", "{prompts}", "-o", "OUT"],
                 "--output"),
    "lab": (["lab", "-o", "OUT"], "--output"),
    "mixture-train": (["mixture-train", "--data", "{pairs}", "-o", "OUT"], "--output"),
    "export": (["export", "{rm}", "OUT"], "OUT"),
}


@pytest.mark.parametrize("name", list(LOCKED))
def test_a_second_writer_exits_2_naming_the_output_and_the_holder(name, world, tmp_path, cli):
    args, flag = LOCKED[name]
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a.format(rm=world / "rm", pairs=world / "pairs.jsonl",
                                                 prompts=world / "prompts.jsonl", pb=world / "pb.jsonl")
            for a in args]
    with output_lock(out):
        code, _, err = cli(*argv)
    assert (code, err.strip()) == (2, held_message(flag, out))
    assert list(tmp_path.iterdir()) == []  # nothing written, no lock file left


def test_calibrate_refuses_a_checkpoint_that_another_process_writes(world, tmp_path, cli):
    import shutil

    rm = tmp_path / "rm"
    shutil.copytree(world / "rm", rm)
    manifest = (rm / "rewardlab.json").read_text()
    with output_lock(rm):  # e.g. a train run still writing DIR
        code, _, err = cli("calibrate", rm, "--data", world / "pairs.jsonl", "--device", "cpu")
    assert (code, err.strip()) == (2, held_message("DIR", rm))
    assert (rm / "rewardlab.json").read_text() == manifest
    code, _, err = cli("calibrate", rm, "--data", world / "pairs.jsonl", "--device", "cpu")
    assert code == 0, err
    assert "normalization" in json.loads((rm / "rewardlab.json").read_text())


def test_score_and_train_proceed_once_the_lock_is_released(world, tmp_path, cli):
    out = tmp_path / "s.jsonl"
    with output_lock(out):
        assert cli("score", world / "rm", world / "pairs.jsonl", "-o", out)[0] == 2
    assert not out.exists()
    code, _, err = cli("score", world / "rm", world / "pairs.jsonl", "-o", out, "--device", "cpu")
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 16
    run = tmp_path / "run"
    with output_lock(run):
        assert cli("train", "--data", world / "pairs.jsonl", "-o", run, "--max-steps", "1")[0] == 2
    assert not run.exists()
    code, _, err = cli("train", "--data", world / "pairs.jsonl", "-o", run, "--max-steps", "1", "--batch-size", "8",
                       "--max-length", "32")
    assert code == 0, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.jsonl"]


# -- 2. an output that is an input --------------------------------------------------------------------------------

def test_score_into_its_own_input_is_refused_before_the_reward_loads(world, tmp_path, cli):
    data = tmp_path / "d.jsonl"
    data.write_bytes((world / "pairs.jsonl").read_bytes())
    os.link(data, tmp_path / "hard.jsonl")
    for out in (data, tmp_path / "hard.jsonl", tmp_path / "x" / ".." / "d.jsonl"):
        code, _, err = cli("score", world / "rm", data, "-o", out, "--device", "cpu")
        assert (code, err.strip()) == (2, f"--output {out}: is the same file as the input FILE {data}; choose "
                                          "another --output")
    assert data.read_bytes() == (world / "pairs.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "hard.jsonl"]


SAME = {  # command line with D: the input that is also the output; the input's name in the message
    "judge": (["judge", "judge:no-such-model", "--data", "D", "-o", "D"], "--data", "--output"),
    "eval-prm -o": (["eval-prm", "no-such-prm", "--data", "D", "-o", "D"], "--data", "--output"),
    "eval-prm --report": (["eval-prm", "R", "--data", "{pb}", "--report", "R"], "MODEL", "--report"),
    "inspect": (["inspect", "no-such-rm", "D", "-o", "D"], "FILE", "--output"),
    "eval": (["eval", "R", "--data", "{pairs}", "-o", "R"], "REWARD", "--output"),
    "export": (["export", "R", "R"], "MODEL", "OUT"),
    "optimize": (["optimize", "bon", "--policy", "R", "--reward", "no-such-rm", "--prompts", "{prompts}", "-o", "R"],
                 "--policy", "--output"),
    "train --base": (["train", "--data", "{pairs}", "--base", "R", "-o", "R", "--overwrite"], "--base", "--output"),
    "mixture-train --base": (["mixture-train", "--data", "{pairs}", "--base", "R", "-o", "R", "--overwrite"],
                             "--base", "--output"),
}


@pytest.mark.parametrize("name", list(SAME))
def test_an_output_that_is_an_input_exits_2_before_any_work(name, world, tmp_path, cli):
    import shutil

    args, input_flag, flag = SAME[name]
    d = tmp_path / "d.jsonl"
    d.write_bytes((world / "pb.jsonl" if "prm" in name else world / "pairs.jsonl").read_bytes())
    r = tmp_path / "r"
    shutil.copytree(world / "rm", r)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = [{"D": str(d), "R": str(r)}.get(a, a).format(pb=world / "pb.jsonl", pairs=world / "pairs.jsonl",
                                                        prompts=world / "prompts.jsonl") for a in args]
    code, _, err = cli(*argv)
    same = d if "D" in args else r
    what = "directory" if same.is_dir() else "file"
    assert (code, err.strip()) == (2, f"{flag} {same}: is the same {what} as the input {input_flag} {same}; choose "
                                      f"another {flag}")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_overwrite_refuses_a_run_directory_holding_an_input(world, tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("train", "--data", world / "pairs.jsonl", "-o", run, "--max-steps", "1", "--batch-size", "8",
                       "--max-length", "32")
    assert code == 0, err
    data = run / "pairs.jsonl"
    data.write_bytes((world / "pairs.jsonl").read_bytes())
    for argv in (["train", "--data", data, "-o", run, "--overwrite"],
                 ["mixture-train", "--data", data, "-o", run, "--overwrite"]):
        code, _, err = cli(*argv)
        assert (code, err.strip()) == (2, f"--output {run}: contains the input --data {data}, which --overwrite "
                                          "would delete")
    assert data.read_bytes() == (world / "pairs.jsonl").read_bytes() and (run / "metrics.jsonl").exists()


def test_optimize_refuses_a_policy_inside_the_run_directory_it_replaces(world, tmp_path, cli):
    from rewardlab.models.tiny import tiny_causal_lm, train_tiny_tokenizer

    tok = train_tiny_tokenizer(["help me good answer yes bad no"] * 4, vocab_size=64)
    policy = tmp_path / "run" / "policy"
    tiny_causal_lm(tok, seed=0).save_pretrained(policy)
    tok.save_pretrained(policy)
    code, _, err = cli("optimize", "bon", "--policy", policy, "--reward", world / "rm", "--prompts",
                       world / "prompts.jsonl", "-o", tmp_path / "run")
    assert (code, err.strip()) == (2, f"--output {policy}: is the same directory as the input --policy {policy}; "
                                      "choose another --output")


# -- 3. outputs checked before the work ---------------------------------------------------------------------------

def test_outputs_under_a_file_exit_2_before_any_work(world, tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    bad = blocker / "out"
    cases = [
        (["judge", "judge:no-such-model", "--data", world / "pairs.jsonl", "-o", bad],
         f"--output {bad}: {blocker} is a file, not a directory"),
        (["eval-prm", "no-such-prm", "--data", world / "pb.jsonl", "--report", bad],
         f"--report {bad}: lies under {blocker}, which is a file, expected a directory"),
        (["mixture-train", "--data", world / "pairs.jsonl", "-o", bad],
         f"--output {bad}: lies under {blocker}, which is a file, expected a directory"),
    ]
    for argv, message in cases:
        code, _, err = cli(*argv)
        assert (code, err.strip()) == (2, message)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"] and blocker.read_text() == "keep me"


def test_mixture_train_replaces_an_existing_model_only_with_overwrite(world, tmp_path, cli):
    from rewardlab.rewards.personalized import load_mixture

    out = tmp_path / "mix"
    out.mkdir()
    (out / "old-model.bin").write_text("an earlier model")
    args = ["mixture-train", "--data", world / "pairs.jsonl", "-o", out, "--k", "2", "--epochs", "1",
            "--batch-size", "8", "--max-length", "32"]
    code, _, err = cli(*args)
    assert (code, err.strip()) == (2, f"--output {out}: exists and is not empty; pass --overwrite to replace it, or "
                                      "choose a new --output")
    assert [p.name for p in out.iterdir()] == ["old-model.bin"]
    code, stdout, err = cli(*args, "--overwrite")
    assert code == 0, err
    assert not (out / "old-model.bin").exists() and load_mixture(out)[0].k == 2  # replaced whole
    assert [p.name for p in tmp_path.iterdir()] == ["mix"]  # no temp or old directory left
