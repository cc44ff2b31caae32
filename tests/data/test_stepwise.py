"""Stepwise rows (TRL stepwise, ProcessBench): parsing, FILE:LINE validation, loading, step splitting, and the
TRL-layout step encoding with counted truncation."""

from __future__ import annotations

import json

import pytest

from rewardlab.data.step_encode import StepEncoder, StepFormat
from rewardlab.data.stepwise import (
    first_error_of,
    is_stepwise_file,
    load_stepwise,
    load_stepwise_file,
    parse_stepwise_row,
    split_steps,
    step_spans,
)
from rewardlab.data.validate import RowError
from rewardlab.errors import UserError

TRL = {"prompt": "Which is larger, 9.8 or 9.11?", "completions": ["11 is greater than 8.", "So 9.11 > 9.8."],
       "labels": [True, False]}
PB = {"problem": "2 + 2 * 3?", "steps": ["2 * 3 = 6", "2 + 6 = 9", "So 9"], "label": 1, "final_answer_correct": False}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_trl_row_labels_and_first_error():
    schema, ex = parse_stepwise_row(TRL)
    assert schema == "stepwise"
    assert ex.steps == TRL["completions"] and ex.step_labels == [1.0, 0.0] and ex.first_error == 1
    _, soft = parse_stepwise_row({**TRL, "labels": [0.75, 0.25]})  # soft (Monte Carlo) labels
    assert soft.step_labels == [0.75, 0.25] and soft.first_error == 1
    _, ok = parse_stepwise_row({**TRL, "labels": [True, True]})
    assert ok.first_error == -1
    _, unlabeled = parse_stepwise_row({k: v for k, v in TRL.items() if k != "labels"})
    assert unlabeled.step_labels is None and unlabeled.first_error is None


def test_processbench_row_labels_steps_up_to_the_first_error_only():
    schema, ex = parse_stepwise_row(PB)
    assert schema == "processbench" and ex.first_error == 1 and ex.final_answer_correct is False
    assert ex.step_labels == [1.0, 0.0, None]  # ProcessBench labels nothing after the first error
    _, clean = parse_stepwise_row({**PB, "label": -1})
    assert clean.step_labels == [1.0, 1.0, 1.0] and clean.first_error == -1


def test_first_error_of_skips_unlabeled_steps():
    assert first_error_of([1.0, None, 0.2]) == 2
    assert first_error_of([1.0, 0.6]) == -1
    assert first_error_of([0.49]) == 0


@pytest.mark.parametrize("row, message", [
    ({**TRL, "labels": [True]}, "field 'labels' has 1 values for 2 steps"),
    ({**TRL, "labels": [True, 2]}, "field 'labels[1]' must be true/false or a number in [0, 1], got 2"),
    ({**TRL, "labels": [True, float("nan")]}, "field 'labels[1]'"),
    ({**TRL, "labels": [True, "yes"]}, "field 'labels[1]'"),
    ({**TRL, "completions": ["a", "  "]}, "field 'completions[1]' is an empty step"),
    ({**TRL, "completions": []}, "field 'completions' must be a non-empty list"),
    ({**TRL, "completions": ["a", 3]}, "field 'completions[1]' must be a string"),
    ({"completions": ["a"], "labels": [True]}, "field 'prompt' missing"),
    ({**TRL, "final_answer_correct": "yes"}, "field 'final_answer_correct' must be true or false"),
    ({**PB, "label": 3}, "field 'label' must be -1 or a step index 0..2, got 3"),
    ({**PB, "label": -2}, "field 'label' must be -1 or a step index 0..2"),
    ({**PB, "label": True}, "field 'label' must be -1 or a step index"),
    ({k: v for k, v in PB.items() if k != "label"}, "field 'label' missing"),
    ({**PB, "problem": 5}, "field 'problem' must be a string"),
    ({"prompt": "p", "chosen": "a", "rejected": "b"}, "not a stepwise row"),
])
def test_invalid_rows_name_the_field(row, message):
    with pytest.raises(RowError, match=None) as e:
        parse_stepwise_row(row)
    assert message in str(e.value)


def test_training_requires_labels():
    with pytest.raises(RowError, match="field 'labels' missing"):
        parse_stepwise_row({"prompt": "p", "completions": ["a"]}, require_labels=True)


def test_load_reports_every_problem_with_file_and_line(tmp_path):
    f = _write(tmp_path / "s.jsonl", [TRL, {**TRL, "labels": [True]}, PB, TRL])
    report = load_stepwise_file(f)
    assert report.count == 2 and report.schema == "stepwise"
    assert report.problems[0] == f"{f}:2: field 'labels' has 1 values for 2 steps (one label per step)"
    assert report.problems[1].startswith(f"{f}:3: schema 'processbench' differs")
    with pytest.raises(UserError) as e:
        load_stepwise(f)
    assert len(e.value.problems) == 2
    rows = load_stepwise(f, skip_invalid=True, skipped_report=tmp_path / "skipped.txt")
    assert len(rows) == 2 and rows[1].source.line == 4
    assert (tmp_path / "skipped.txt").read_text().count("\n") == 2


def test_load_parquet_and_empty_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([PB, {**PB, "label": -1}]), tmp_path / "pb.parquet")
    rows = load_stepwise(tmp_path / "pb.parquet")
    assert [r.first_error for r in rows] == [1, -1]
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(UserError, match="file is empty"):
        load_stepwise(tmp_path / "e.jsonl")


def test_steps_containing_the_separator_are_counted(tmp_path, capsys):
    f = _write(tmp_path / "s.jsonl", [{"prompt": "p", "completions": ["a\nb", "c"], "labels": [True, True]}])
    load_stepwise(f, separator="\n")
    assert "1 of 2 steps contain the step separator" in capsys.readouterr().err


def test_data_validate_accepts_stepwise_files(tmp_path, cli):
    good = _write(tmp_path / "good.jsonl", [TRL] * 3)
    bad = _write(tmp_path / "bad.jsonl", [PB, {**PB, "label": 7}])
    assert is_stepwise_file(good) and is_stepwise_file(bad)
    code, out, err = cli("data", "validate", good)
    assert code == 0 and "3 rows OK (stepwise)" in out
    code, out, err = cli("data", "validate", bad)
    assert code == 2 and f"{bad}:2: field 'label' must be -1 or a step index 0..2, got 7" in err


@pytest.mark.parametrize("row", [TRL, PB])
def test_pair_commands_name_a_stepwise_file_as_such(tmp_path, cli, row):
    f = _write(tmp_path / "steps.jsonl", [row])
    code, _, err = cli("eval", "python:rewardlab.rewards.rules:length_reward", "--data", f, "-o", tmp_path / "e")
    assert code == 2 and f"{f}:1: field 'chosen' missing: this is a stepwise (process-reward) row" in err
    assert "eval-prm" in err


def test_step_spans_and_split():
    text = "a\n\nb c\n  \nd\n"
    assert split_steps(text, "\n") == ["a", "b c", "d"]
    assert [text[s:e] for s, e in step_spans(text, "\n")] == ["a", "b c", "d"]
    assert step_spans(text, "\n")[1] == (3, 6)
    assert split_steps("one", "\n\n") == ["one"]
    assert split_steps("", "\n") == [""]  # nothing visible: one empty step, still scored
    with pytest.raises(ValueError):
        step_spans("a", "")


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_encoding_follows_trl_layout(tokenizer):
    enc = StepEncoder(tokenizer, max_length=512)
    steps = ["the cat sat", "on a mat"]
    e = enc.encode("help me", steps)
    sep = _ids(tokenizer, "\n")
    expected = [tokenizer.bos_token_id] + _ids(tokenizer, "help me") + _ids(tokenizer, "the cat sat") + sep + \
        _ids(tokenizer, "on a mat") + sep  # bos + prompt, then each step tokenized alone + separator (TRL)
    assert e.ids == expected
    assert e.ends == [len(expected) - len(_ids(tokenizer, "on a mat") + sep) - 1, len(expected) - 1]
    assert tokenizer.decode(e.ids[e.ends[0] + 1 : e.ends[1] + 1]) == "on a mat\n"  # read at step + separator's end
    assert enc.stats.items == 1 and enc.stats.steps_dropped == 0


def test_prompt_separator_and_conversational_prompt(tokenizer):
    enc = StepEncoder(tokenizer, max_length=512, fmt=StepFormat("\n", prompt_separator="\n"))
    assert enc.encode("help me", ["yes"]).ids[: 1 + len(_ids(tokenizer, "help me\n"))] == \
        [tokenizer.bos_token_id] + _ids(tokenizer, "help me") + _ids(tokenizer, "\n")
    chat = StepEncoder(tokenizer, max_length=512).encode([{"role": "user", "content": "help me"}], ["yes"])
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "help me"}], tokenize=False,
                                             add_generation_prompt=True)
    assert chat.ids[1 : 1 + len(_ids(tokenizer, rendered))] == _ids(tokenizer, rendered)


def test_truncation_cuts_prompt_first_then_drops_whole_steps(tokenizer):
    steps = ["the cat sat on a mat", "the dog ran", "big red answer"]
    step_len = [len(_ids(tokenizer, s)) + len(_ids(tokenizer, "\n")) for s in steps]
    prompt = "please help me with this task now"
    p_len = len(_ids(tokenizer, prompt))
    # room for all steps and 2 prompt tokens (+1 for bos): the prompt is cut from the left, no step is lost
    enc = StepEncoder(tokenizer, max_length=1 + 2 + sum(step_len))
    e = enc.encode(prompt, steps)
    assert len(e.ends) == 3 and e.ids[1:3] == _ids(tokenizer, prompt)[p_len - 2:]
    assert enc.stats.prompt_truncated == 1 and enc.stats.steps_dropped == 0
    # room for the first two steps only: no prompt, the third step dropped (counted), never cut mid-step
    enc = StepEncoder(tokenizer, max_length=1 + step_len[0] + step_len[1] + 1)
    e = enc.encode(prompt, steps)
    assert len(e.ends) == 2 and e.n_steps == 3 and len(e.ids) == 1 + step_len[0] + step_len[1]
    assert enc.stats.as_dict() == {"items": 1, "steps": 3, "prompt_truncated": 1, "items_with_dropped_steps": 1,
                                   "steps_dropped": 1, "steps_cut": 0}
    # not even the first step fits: it is cut at its end and still scored (counted as cut)
    enc = StepEncoder(tokenizer, max_length=3)
    e = enc.encode(prompt, steps)
    assert len(e.ids) == 3 and e.ends == [2] and enc.stats.steps_cut == 1 and enc.stats.steps_dropped == 2


def test_encoder_tokenizer_gets_cls_and_sep(corpus):
    from tests.models.hf_families import family_tokenizer

    tok = family_tokenizer("bert", corpus + ["a . b"])
    enc = StepEncoder(tok, max_length=64, fmt=StepFormat(" ."), decoder=False)
    e = enc.encode("the cat", ["sat on", "a mat"])
    assert e.ids[0] == tok.cls_token_id and e.ids[-1] == tok.sep_token_id
    assert e.ids == tok("the cat sat on . a mat .")["input_ids"]  # WordPiece splits at spaces: same ids
    assert [tok.decode([e.ids[j]]) for j in e.ends] == [".", "."]


def test_a_separator_the_tokenizer_drops_is_a_user_error(corpus):
    from tests.models.hf_families import family_tokenizer

    tok = family_tokenizer("bert", corpus + ["a . b"])  # WordPiece drops "\n"
    with pytest.raises(UserError, match=r"tokenizes to no ids .*--step-separator"):
        StepEncoder(tok, max_length=64, fmt=StepFormat("\n"), decoder=False)
