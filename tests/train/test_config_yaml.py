"""`rewardlab train --config FILE`: every key typed and checked before anything exists, every option of the command
in YAML (flags override it), and `--print-config` documenting the schema."""

import json
from pathlib import Path

import pytest
import yaml

from rewardlab.errors import UserError
from rewardlab.train.config import OBJECTIVES, TrainConfig
from rewardlab.train.options import all_keys, load_options

TINY = "tiny_layers: 1\ntiny_embd: 32\ntiny_vocab: 128\nmax_length: 32\nbatch_size: 8\nlog_every: 1\n"


@pytest.fixture
def data(tmp_path, pair_rows) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def assert_nothing_made(tmp_path: Path) -> None:
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("*.lock"))


WRONG_TYPES = [
    ("keep_checkpoints", '"2"', "expected an integer"),  # crashed after training: the model was lost
    ("use_margin", '"no"', "expected true or false"),  # silently turned margins on
    ("max_steps", "1.5", "expected an integer"),  # was accepted
    ("epochs", '"3"', "expected an integer"),
    ("batch_size", "8.5", "expected an integer"),
    ("grad_accum", "true", "expected an integer"),
    ("max_length", '"512"', "expected an integer"),
    ("save_every", '"10"', "expected an integer"),
    ("log_every", "2.5", "expected an integer"),
    ("seed", "null", "expected an integer"),
    ("tiny_layers", '"2"', "expected an integer"),
    ("lr", "fast", "expected a number or null"),
    ("centering", '"0.1"', "expected a number"),
    ("label_smoothing", "[0.1]", "expected a number"),
    ("drop_ties", '"yes"', "expected true or false"),
    ("bucket", "1", "expected true or false"),
    ("gradient_checkpointing", '"true"', "expected true or false"),
    ("mixed_precision", "no", "expected a string"),  # unquoted no is false in YAML
    ("base", "5", "expected a string"),
    ("extra", "[1]", "expected a mapping"),
    ("data", "5", "expected a string or null"),
    ("skip_invalid", '"no"', "expected true or false"),
]


@pytest.mark.parametrize("key,value,expected", WRONG_TYPES, ids=[k for k, _, _ in WRONG_TYPES])
def test_a_wrong_typed_value_exits_2_before_anything_exists(tmp_path, data, cli, key, value, expected):
    cfg = write(tmp_path / "rm.yaml", f"{key}: {value}\n")
    code, _, err = cli("train", "--data", data, "--output", tmp_path / "run", "--config", cfg)
    assert code == 2 and f"{cfg}: {key}: {expected}, got " in err, err
    assert "Traceback" not in err
    assert_nothing_made(tmp_path)


def test_quoted_values_get_a_hint_and_every_bad_key_is_reported_at_once(tmp_path, data, cli):
    cfg = write(tmp_path / "rm.yaml", 'keep_checkpoints: "2"\nuse_margin: "no"\nmax_step: 3\nmax_steps: 1.5\n'
                                      "log_every: 0\nresume: true\nbeta: 0.2\nepochs: 1\n")
    code, _, err = cli("train", "--data", data, "--output", tmp_path / "run", "--config", cfg)
    assert code == 2
    assert err.splitlines() == [
        f'{cfg}: keep_checkpoints: expected an integer, got "2" (a quoted string: write 2 without quotes)',
        f'{cfg}: use_margin: expected true or false, got "no" (a quoted string: write false without quotes)',
        f"{cfg}: max_step: unknown key (did you mean max_steps?)",
        f"{cfg}: max_steps: expected an integer, got 1.5",
        f"{cfg}: log_every: must be >= 1",
        f"{cfg}: resume: an option of one run, not of a config: pass --resume",
        f"{cfg}: beta: does not apply to --objective bt (only to dpo)",
    ]
    assert_nothing_made(tmp_path)


def test_bad_values_from_yaml_and_flags_are_named_by_their_source(tmp_path, data, cli):
    cfg = write(tmp_path / "rm.yaml", "keep_checkpoints: 0\nwarmup_ratio: 2\nuse-margin: false\n")
    code, _, err = cli("train", "--data", data, "--output", tmp_path / "run", "--config", cfg, "--max-length", "4",
                       "--step-separator", ";")
    assert code == 2 and err.splitlines() == [
        f"{cfg}: keep_checkpoints: must be >= 1",
        f"{cfg}: warmup_ratio: must be in [0, 1]",
        f"{cfg}: use-margin: unknown key (did you mean use_margin?)",
        "--step-separator: does not apply to --objective bt (only to prm)",
        "--max-length: must be >= 8",
    ]
    assert_nothing_made(tmp_path)


def test_types_are_strict_but_an_int_is_a_number_and_1e_3_is_a_float(tmp_path):
    cfg = write(tmp_path / "rm.yaml", "lr: 1e-3\nweight_decay: 0\nmax_grad_norm: 2\nuse_margin: no\n"
                                      "extra: {note: x}\nobjective: dpo\nbeta: 1\n")
    opts = load_options(cfg, {})
    assert opts.objective == "dpo" and opts.cfg.lr == 1e-3 and opts.cfg.beta == 1 and opts.cfg.use_margin is False
    assert opts.cfg.weight_decay == 0 and opts.cfg.max_grad_norm == 2 and opts.cfg.extra == {"note": "x"}
    assert opts.origin["lr"] == str(cfg) and "seed" not in opts.origin
    with pytest.raises(UserError, match=r"config: use_margin: expected true or false, got \"no\""):
        TrainConfig.from_dict({"use_margin": "no"})
    with pytest.raises(UserError, match="objective: must be bt, dpo, armo or prm"):
        load_options(write(tmp_path / "o.yaml", "objective: ppo\n"), {})


def test_data_eval_and_every_option_from_yaml_train_a_model_and_flags_override(tmp_path, data, cli):
    cfg = write(tmp_path / "rm.yaml", f"data: {data}\neval: {data}\noutput: {tmp_path / 'run'}\nobjective: bt\n"
                                      f"max_steps: 1\nuse_margin: false\nkeep_checkpoints: 1\n{TINY}")
    code, out, err = cli("train", "--config", cfg, "--max-steps", "2")
    assert code == 0, err
    assert "eval accuracy" in out  # eval: from the YAML was used
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["metrics"]["steps"] == 2  # the flag won over max_steps: 1
    assert run["config"]["use_margin"] is False and run["config"]["keep_checkpoints"] == 1
    assert run["config"]["tiny_embd"] == 32


def test_objective_and_its_options_from_yaml(tmp_path, data, cli):
    cfg = write(tmp_path / "dpo.yaml", f"objective: dpo\ndata: {data}\noutput: {tmp_path / 'dpo'}\nbeta: 0.2\n"
                                       f"max_steps: 1\n{TINY}")
    code, out, err = cli("train", "--config", cfg)
    assert code == 0, err
    assert json.loads((tmp_path / "dpo" / "rewardlab_dpo.json").read_text())["beta"] == 0.2
    bad = write(tmp_path / "bad.yaml", f"objective: dpo\ndata: {data}\npooling: mean\n")
    code, _, err = cli("train", "--config", bad, "--output", tmp_path / "run")
    assert code == 2 and f"{bad}: pooling: does not apply to --objective dpo (only to bt)" in err
    assert_nothing_made(tmp_path)


def test_armo_options_from_yaml(tmp_path, cli):
    from tests.rewards.test_multiobjective import synthetic

    rated, pairs = synthetic(40, 30, seed=1)
    write(tmp_path / "rated.jsonl", "".join(json.dumps({"prompt": r.prompt, "response": r.response,
                                                        "attributes": r.attributes}) + "\n" for r in rated))
    write(tmp_path / "pairs.jsonl", "".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen,
                                                        "rejected": p.rejected}) + "\n" for p in pairs))
    cfg = write(tmp_path / "armo.yaml", f"objective: armo\ndata: {tmp_path / 'pairs.jsonl'}\nrated: "
                                        f"{tmp_path / 'rated.jsonl'}\nverbosity: verbosity\nepochs: 5\n"
                                        f"max_length: 64\noutput: {tmp_path / 'armo'}\n")
    code, out, err = cli("train", "--config", cfg)
    assert code == 0 and "saved ArmoRM" in out, err
    code, _, err = cli("train", "--config", cfg, "--output", tmp_path / "run", "--batch-size", "4")
    assert code == 2 and "--batch-size: does not apply to --objective armo (only to bt, dpo, prm)" in err
    assert_nothing_made(tmp_path)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_print_config_is_yaml_of_every_key_and_loads_back_unchanged(tmp_path, cli, objective):
    code, out, err = cli("train", "--objective", objective, "--print-config")
    assert code == 0 and err == ""
    printed = yaml.safe_load(out)
    assert list(printed) == all_keys(objective) and printed["objective"] == objective
    assert all(line.startswith("#") for line in out.splitlines()[:3])  # documented
    lines = out.splitlines()
    for key in printed:  # each key has a one-line description above it
        i = next(n for n, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 10
    cfg = write(tmp_path / "printed.yaml", out)
    assert load_options(cfg, {}).values() == printed
    if objective == "bt":
        assert printed["keep_checkpoints"] == 2 and printed["use_margin"] is True and printed["lr"] is None
        assert "beta" not in printed and "beta (dpo)" in out


def test_printed_config_trains_with_its_values(tmp_path, data, cli):
    code, out, _ = cli("train", "--print-config")
    cfg = write(tmp_path / "rm.yaml", out)
    code, _, err = cli("train", "--config", cfg, "--data", data, "--output", tmp_path / "run", "--max-steps", "1")
    assert code == 0, err
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    printed = yaml.safe_load(out)
    for key, value in printed.items():
        if key in recorded and key not in ("output", "max_steps", "lr"):  # lr: recorded resolved
            assert recorded[key] == value, key


def test_print_config_shows_the_values_of_config_and_flags(tmp_path, cli):
    cfg = write(tmp_path / "rm.yaml", "objective: prm\nstep_separator: '\\n\\n'\nlr: 3.0e-4\n")
    code, out, _ = cli("train", "--config", cfg, "--print-config", "--batch-size", "4")
    printed = yaml.safe_load(out)
    assert code == 0 and printed["step_separator"] == "\n\n" and printed["lr"] == 3e-4
    assert printed["batch_size"] == 4 and "pooling" not in printed
    assert "# pairs per optimizer micro-step and device (--batch-size) [default: 16]" in out
    code, _, err = cli("train", "--config", write(tmp_path / "bad.yaml", "seed: 1.5\n"), "--print-config")
    assert code == 2 and "seed: expected an integer, got 1.5" in err
