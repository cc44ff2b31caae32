"""Row rules: empty responses, implicit prompts (hh-rlhf raw format), roles, weights, explicit empty prompts."""

import pytest

from rewardlab.data.load import load_kway, load_pairs, load_rated
from rewardlab.data.validate import split_prompt
from tests.data.conftest import write_rows

A = "assistant"


def msg(role, content):
    return {"role": role, "content": content}


def test_empty_and_blank_responses_are_accepted_and_counted(tmp_path, cli, capsys):
    plain = write_rows(tmp_path / "plain.jsonl", [{"prompt": "q", "chosen": "", "rejected": "no"},
                                                  {"prompt": "q", "chosen": "yes", "rejected": " "},
                                                  {"prompt": "q", "chosen": "yes", "rejected": "no"},
                                                  {"prompt": "q", "chosen": " ", "rejected": ""}])
    pairs = load_pairs(plain)
    assert [(p.chosen, p.rejected) for p in pairs] == [("", "no"), ("yes", " "), ("yes", "no"), (" ", "")]
    assert f"{plain}:1, {plain}:2, {plain}:4: 3 pairs have an empty response" in capsys.readouterr().err
    conv = write_rows(tmp_path / "conv.jsonl", [{"prompt": [msg("user", "hi")], "chosen": [msg(A, "hello")],
                                                 "rejected": [msg(A, " ")]}])
    kway = write_rows(tmp_path / "kway.jsonl", [{"prompt": "q", "chosen": ["a"], "rejected": ["", "b"]}])
    rated = write_rows(tmp_path / "rated.jsonl", [{"prompt": "q", "response": "", "attributes": {"h": 1}}])
    assert load_pairs(conv)[0].rejected == [msg(A, " ")]
    assert load_kway(kway)[0].rejected == ["", "b"]
    assert load_rated(rated)[0].response == ""
    code, out, _ = cli("data", "validate", plain, conv, kway, rated)
    assert code == 0
    for path, n, noun in ((plain, 3, "pairs"), (conv, 1, "pairs"), (kway, 1, "rows"), (rated, 1, "rows")):
        assert f"{path}:1" in out and f": {n} {noun} have an empty response" in out


def test_identical_empty_responses_are_the_one_error(tmp_path, cli):
    path = write_rows(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "", "rejected": "x"},
                                             {"prompt": "q", "chosen": "", "rejected": ""},
                                             {"prompt": [msg("user", "q")], "chosen": [msg(A, " ")],
                                              "rejected": [msg(A, " ")]}])
    code, _, err = cli("data", "stats", path)
    lines = err.splitlines()
    assert code == 2
    assert lines[:2] == [f"{path}:2: chosen and rejected are identical", f"{path}:3: chosen and rejected are identical"]
    assert "--skip-invalid" in lines[2] and len(lines) == 3
    code, out, _ = cli("data", "stats", path, "--skip-invalid")
    assert code == 0 and "1 rows, schema pair-plain" in out and "skipped 2 invalid rows" in out


HH = [
    # (chosen, rejected, expected prompt): the prompt ends at the last "\n\nAssistant:" both texts share
    ("\n\nHuman: hi\n\nAssistant: hello", "\n\nHuman: hi\n\nAssistant: go away", "\n\nHuman: hi\n\nAssistant:"),
    # both responses start with the same words: still cut at the turn marker, not inside the response
    ("\n\nHuman: What is 2+2?\n\nAssistant: The answer is 4.", "\n\nHuman: What is 2+2?\n\nAssistant: The answer is 5.",
     "\n\nHuman: What is 2+2?\n\nAssistant:"),
    # multi-turn: the earlier turns are prompt
    ("\n\nHuman: hi\n\nAssistant: hey\n\nHuman: a joke?\n\nAssistant: Why did the chicken...",
     "\n\nHuman: hi\n\nAssistant: hey\n\nHuman: a joke?\n\nAssistant: No.",
     "\n\nHuman: hi\n\nAssistant: hey\n\nHuman: a joke?\n\nAssistant:"),
    # multi-turn that diverges in the first answer: the prompt stops there, the later turns are response
    ("\n\nHuman: hi\n\nAssistant: hey there\n\nHuman: ok\n\nAssistant: bye",
     "\n\nHuman: hi\n\nAssistant: hey you\n\nHuman: ok\n\nAssistant: bye", "\n\nHuman: hi\n\nAssistant:"),
    # an empty response (hh-rlhf has them)
    ("\n\nHuman: hi\n\nAssistant:", "\n\nHuman: hi\n\nAssistant: go away", "\n\nHuman: hi\n\nAssistant:"),
    # no turn marker: TRL's rule (common prefix, the final space goes to the responses)
    ("The sky is blue.", "The sky is green.", "The sky is"),
    ("The sky is blue.", "The sky is bright.", "The sky is b"),
    ("abc", "xyz", ""),
]


@pytest.mark.parametrize("chosen,rejected,prompt", HH)
def test_split_prompt_is_a_prefix_cut(chosen, rejected, prompt):
    p, c, r = split_prompt(chosen, rejected)
    assert p == prompt
    assert p + c == chosen and p + r == rejected


def test_implicit_prompt_rows_get_the_shared_prompt_and_it_is_counted(tmp_path, cli, capsys):
    path = write_rows(tmp_path / "hh.jsonl", [{"chosen": c, "rejected": r} for c, r, _ in HH])
    pairs = load_pairs(path)
    assert [p.prompt for p in pairs] == [prompt for _, _, prompt in HH]
    assert all(p.prompt + p.chosen == c and p.prompt + p.rejected == r for p, (c, r, _) in zip(pairs, HH))
    err = capsys.readouterr().err
    assert f"{path}: 7 pairs have no 'prompt' field" in err  # "abc"/"xyz" share nothing: no prompt extracted
    assert ": 1 pairs have an empty response" in err and f"{path}:" in err
    code, out, _ = cli("data", "validate", path)
    assert code == 0 and f"{path}: 7 pairs have no 'prompt' field" in out


def test_implicit_conversational_rows_split_at_the_shared_messages(tmp_path, cli):
    u1, a1, u2 = msg("user", "hi"), msg(A, "hey"), msg("user", "a joke?")
    good = [{"chosen": [u1, a1, u2, msg(A, "Why did...")], "rejected": [u1, a1, u2, msg(A, "No.")]},
            {"chosen": [msg("system", "be nice"), u1, msg(A, "")], "rejected": [msg("system", "be nice"), u1,
                                                                                 msg(A, "go away")]}]
    path = write_rows(tmp_path / "conv.jsonl", good)
    pairs = load_pairs(path)
    assert pairs[0].prompt == [u1, a1, u2] and pairs[0].chosen == [msg(A, "Why did...")]
    assert pairs[0].rejected == [msg(A, "No.")]
    assert pairs[1].prompt == [msg("system", "be nice"), u1] and pairs[1].chosen == [msg(A, "")]
    # diverging before the last user turn leaves a user turn in the responses: refused, naming the message
    bad = write_rows(tmp_path / "bad.jsonl", good + [
        {"chosen": [u1, msg(A, "x"), u2, msg(A, "y")], "rejected": [u1, msg(A, "z"), u2, msg(A, "y")]},
        {"chosen": [u1, a1], "rejected": [u1, a1, u2, msg(A, "y")]},
    ])
    code, _, err = cli("train", "--data", bad, "--output", tmp_path / "out")
    lines = err.splitlines()
    assert code == 2
    assert lines[0].startswith(f"{bad}:3: field 'chosen[2].role' is 'user': a response is made of assistant turns")
    assert lines[1].startswith(f"{bad}:4: field 'chosen' has no turns after the 2 it shares")
    assert "--skip-invalid" in lines[-1] and "Traceback" not in err


def test_ultrafeedback_rows_with_a_prompt_string_and_full_conversations(tmp_path, cli):
    """UltraFeedback-binarized: 'prompt' is the user text and chosen/rejected repeat it as their first turn (TRL's
    maybe_extract_prompt treats them as implicit): the shared turns are the prompt, the column is not used twice."""
    sys_, u = msg("system", "be nice"), msg("user", "What is 2+2?")
    rows = [{"prompt": "What is 2+2?", "chosen": [u, msg(A, "4")], "rejected": [u, msg(A, "")],
             "messages": [u, msg(A, "4")], "score_chosen": 8.0, "score_rejected": 2.5},
            {"prompt": "What is 2+2?", "chosen": [sys_, u, msg(A, "4")], "rejected": [sys_, u, msg(A, "5")]}]
    path = write_rows(tmp_path / "uf.jsonl", rows)
    pairs = load_pairs(path)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [([u], [msg(A, "4")], [msg(A, "")]),
                                                                  ([sys_, u], [msg(A, "4")], [msg(A, "5")])]
    code, out, _ = cli("data", "validate", path)
    assert code == 0 and f"{path}: 2 rows OK (pair-implicit)" in out
    assert f"{path}: 2 pairs have a 'prompt' string and chosen/rejected conversations that hold the prompt" in out
    assert "no 'prompt' field" not in out
    # a string prompt beside assistant-only conversations is the prompt (explicit, as before)
    explicit = write_rows(tmp_path / "explicit.jsonl", [{"prompt": "q", "chosen": [msg(A, "a")],
                                                         "rejected": [msg(A, "b")]}])
    assert load_pairs(explicit)[0].prompt == "q"


def test_roles_and_response_turns(tmp_path, cli):
    q = [msg("user", "q")]
    path = write_rows(tmp_path / "d.jsonl", [
        {"prompt": q, "chosen": [msg(A, "a"), msg("tool", "42"), msg(A, "it is 42")], "rejected": [msg(A, "b")]},
        {"prompt": q, "chosen": [msg(A, "a"), msg("bot", "b")], "rejected": [msg(A, "c")]},
        {"prompt": [msg("human", "q")], "chosen": [msg(A, "a")], "rejected": [msg(A, "c")]},
        {"prompt": q, "chosen": [msg(A, "a")], "rejected": [msg("user", "c")]},
        {"prompt": q, "chosen": [msg(A, "a"), msg("tool", "42")], "rejected": [msg(A, "c")]},
    ])
    code, _, err = cli("data", "validate", path)
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == (f"{path}:2: field 'chosen[1].role' must be one of system, user, assistant, tool; got 'bot'")
    assert lines[1].startswith(f"{path}:3: field 'prompt[0].role' must be one of")
    assert lines[2].startswith(f"{path}:4: field 'rejected[0].role' is 'user': a response is made of assistant")
    assert lines[3].startswith(f"{path}:5: field 'chosen[1].role' is 'tool'")
    assert len(lines) == 5 and "--skip-invalid" in lines[4]


def test_all_zero_weights_are_refused_even_when_skipping(tmp_path, cli):
    zero = write_rows(tmp_path / "z.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "weight": 0},
                                             {"prompt": "q", "chosen": "c", "rejected": "d", "weight": 0.0}])
    for extra in ((), ("--skip-invalid",)):
        code, _, err = cli("data", "stats", zero, *extra)
        assert code == 2 and err.splitlines() == [f"{zero}:1: every pair has 'weight' 0 (nothing to train on)"]
    some = write_rows(tmp_path / "s.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "weight": 0},
                                             {"prompt": "q", "chosen": "c", "rejected": "d"}])
    assert [p.weight for p in load_pairs(some)] == [0.0, 1.0]


def test_explicit_empty_prompt_means_no_prompt(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"prompt": "", "chosen": "The sky is blue.",
                                              "rejected": "The sky is green."}])
    (pair,) = load_pairs(path)
    assert (pair.prompt, pair.chosen) == ("", "The sky is blue.")  # no extraction: the row said "no prompt"


def test_response_rows_score_but_do_not_pass_as_rated(tmp_path):
    """`{prompt, response}` rows (what `rewardlab score` documents) load as unrated rows; ArmoRM training refuses
    them by name."""
    from rewardlab.data.load import load_rated, load_rows
    from rewardlab.errors import UserError

    f = tmp_path / "r.jsonl"
    f.write_text('{"prompt": "q", "response": "a"}\n{"prompt": "q", "response": ""}\n')
    rows = load_rows(f)
    assert [(r.prompt, r.response, r.attributes) for r in rows] == [("q", "a", {}), ("q", "", {})]
    with pytest.raises(UserError, match="expected rated .* found response rows"):
        load_rated(f)


def test_empty_responses_past_the_first_three_are_counted(tmp_path, capsys):
    rows = [{"prompt": "q", "chosen": "", "rejected": "no"}] * 5
    path = write_rows(tmp_path / "many.jsonl", rows)
    load_pairs(path)
    assert f"{path}:1, {path}:2, {path}:3 (and 2 more): 5 pairs have an empty response" in capsys.readouterr().err


def test_a_csv_file_is_refused_as_a_whole(tmp_path, cli):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected\na,b,c\nd,e,f\n")
    code, _, err = cli("data", "validate", path)
    assert code == 2 and err.count(str(path)) == 1 and "CSV/TSV is not a supported format" in err
