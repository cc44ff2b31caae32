"""`rewardlab data show FILE --model DIR`: the exact rendered text (special tokens included) and its token count."""

import json

from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.rewards.registry import load_reward
from tests.models.hf_families import save_family


def test_show_prints_the_rendered_text_and_token_count(tmp_path, corpus):
    save_family("llama", corpus, tmp_path / "rm")
    prompt = [{"role": "user", "content": "the cat"}]
    row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "sat on a mat"}],
           "rejected": [{"role": "assistant", "content": "ran"}]}
    (tmp_path / "d.jsonl").write_text(json.dumps(row) + "\n")
    result = CliRunner().invoke(app, ["data", "show", str(tmp_path / "d.jsonl"), "--model", str(tmp_path / "rm")],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    ids = load_reward(str(tmp_path / "rm"), device="cpu").encode([prompt], [row["chosen"]])[0]
    assert f"chosen: {len(ids)} tokens" in result.output
    assert "<|begin_of_text|><|start_header_id|>user<|end_header_id|>" in result.output
    assert result.output.count("<|begin_of_text|>") == 2  # one per item: never a second bos

    (tmp_path / "t.jinja").write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                                      "{% if add_generation_prompt %}[assistant] {% endif %}")
    result = CliRunner().invoke(app, ["data", "show", str(tmp_path / "d.jsonl"), "--model", str(tmp_path / "rm"),
                                      "--chat-template", str(tmp_path / "t.jinja")], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "[user] the cat" in result.output and "<|start_header_id|>" not in result.output


def test_chat_template_override_is_recorded_at_train_and_applied_at_score(tmp_path, corpus, cli):
    save_family("llama", corpus, tmp_path / "rm")
    row = {"prompt": [{"role": "user", "content": "the cat"}], "chosen": [{"role": "assistant", "content": "sat"}],
           "rejected": [{"role": "assistant", "content": "ran"}]}
    data = tmp_path / "d.jsonl"
    data.write_text((json.dumps(row) + "\n") * 4)
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}[assistant] {% endif %}")
    code, _, err = cli("train", "--data", data, "--base", tmp_path / "rm", "--output", tmp_path / "out",
                       "--max-steps", 1, "--batch-size", 2, "--chat-template", template)
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "rewardlab.json").read_text())
    assert manifest["rendering"]["chat_template"] == template.read_text()
    trained = load_reward(str(tmp_path / "out"), device="cpu")
    assert "[user] the cat" in trained.tokenizer.decode(trained.encode([row["prompt"]], [row["chosen"]])[0])

    scores = {}
    for name, extra in (("own", []), ("override", ["--chat-template", template])):
        code, _, err = cli("score", tmp_path / "rm", data, "-o", tmp_path / f"{name}.jsonl", *extra)
        assert code == 0, err
        scores[name] = json.loads((tmp_path / f"{name}.jsonl").read_text().splitlines()[0])["chosen_score"]
    assert scores["own"] != scores["override"]  # the override really changes what the model reads
    code, _, err = cli("score", tmp_path / "rm", data, "-o", tmp_path / "x.jsonl", "--chat-template", tmp_path / "no")
    assert code == 2 and "--chat-template" in err and not (tmp_path / "x.jsonl").exists()
