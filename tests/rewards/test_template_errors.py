"""A chat template that refuses a conversation (``raise_exception``: no system role, roles must alternate) is a
user error naming FILE:LINE and the field, in score, eval, data stats and train (was a jinja2 traceback), and a 422
in serve."""

import json

import pytest

from tests.data.conftest import write_rows

STRICT = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
          "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
          "{% if add_generation_prompt %}[assistant] {% endif %}")
SYS, USER = {"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}


def answer(text):
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer):
    from rewardlab.models.checkpoint import save_reward_model
    from rewardlab.models.tiny import tiny_reward_model

    d = tmp_path_factory.mktemp("strict")
    save_reward_model(tiny_reward_model(tokenizer, seed=0, n_layer=1, n_embd=32), tokenizer, d / "rm",
                      manifest={"max_length": 128})
    (d / "strict.jinja").write_text(STRICT)
    write_rows(d / "pairs.jsonl", [{"prompt": [USER], "chosen": answer("a"), "rejected": answer("b")},
                                   {"prompt": [SYS, USER], "chosen": answer("a"), "rejected": answer("b")},
                                   "",
                                   {"prompt": [SYS, USER, *answer("hey"), USER], "chosen": answer("a"),
                                    "rejected": answer("")}])
    return d


def expected(path, fields=("chosen", "rejected"), lines=(2, 4)):
    return [f"{path}:{line}: field '{f}': the chat template refused this conversation: System role not supported"
            for line in lines for f in fields]


def test_score_and_eval_name_the_refused_rows(cli, world, tmp_path):
    pairs = world / "pairs.jsonl"
    code, _, err = cli("score", world / "rm", pairs, "-o", tmp_path / "s.jsonl", "--chat-template",
                       world / "strict.jinja")
    assert code == 2 and err.splitlines()[-4:] == expected(pairs) and not (tmp_path / "s.jsonl").exists()
    code, _, err = cli("eval", world / "rm", "--data", pairs, "-o", tmp_path / "e", "--chat-template",
                       world / "strict.jinja")
    assert code == 2 and err.splitlines()[-4:] == expected(pairs)
    code, _, err = cli("score", world / "rm", pairs, "-o", tmp_path / "s.jsonl")  # its own template: fine
    assert code == 0 and len((tmp_path / "s.jsonl").read_text().splitlines()) == 3


def test_stats_and_train_name_the_refused_rows(cli, world, tmp_path):
    import shutil

    pairs = world / "pairs.jsonl"
    tok = tmp_path / "tok"
    shutil.copytree(world / "rm", tok)
    (tok / "chat_template.jinja").write_text(STRICT)
    code, _, err = cli("data", "stats", pairs, "--tokenizer", tok)
    assert code == 2 and err.splitlines() == expected(pairs)
    code, _, err = cli("train", "--data", pairs, "--base", "tiny", "--output", tmp_path / "out", "--max-steps", "1",
                       "--chat-template", world / "strict.jinja")
    assert code == 2 and err.splitlines()[-1] == expected(pairs, ("chosen",), (2,))[0]


def test_serve_answers_422(world):
    from fastapi.testclient import TestClient

    from rewardlab.rewards.model import ModelReward
    from rewardlab.serve.app import create_app

    (world / "strict_rm").exists() or __import__("shutil").copytree(world / "rm", world / "strict_rm")
    (world / "strict_rm" / "chat_template.jinja").write_text(STRICT)
    with TestClient(create_app(ModelReward.from_pretrained(world / "strict_rm"))) as c:
        r = c.post("/v1/score", json={"items": [{"prompt": [SYS, USER], "response": "x"}]})
        assert r.status_code == 422
        assert json.loads(r.text)["error"]["message"] == ("the chat template refused this conversation: System role "
                                                          "not supported")


def test_data_show_names_the_refused_row(cli, world):
    pairs = world / "pairs.jsonl"
    code, _, err = cli("data", "show", pairs, "--model", world / "rm", "--chat-template", world / "strict.jinja")
    assert code == 2 and err.splitlines()[-1] == expected(pairs, ("chosen",), (2,))[0]
