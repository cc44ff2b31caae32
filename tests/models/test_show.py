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
