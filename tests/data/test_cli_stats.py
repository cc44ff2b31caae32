import json
import subprocess
import sys

CLI = [sys.executable, "-m", "rewardlab.cli"]


def test_stats_counts_subsets_lengths_and_truncation(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    rows = [{"prompt": "the cat " * 20, "chosen": "yes", "rejected": "no", "subset": "a"},
            {"prompt": "q", "chosen": "one two", "rejected": "three", "subset": "b"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run(CLI + ["data", "stats", str(path), "--tokenizer", str(tmp_path / "tok"),
                                 "--max-length", "16"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"{path}: 2 rows, schema pair-plain" in out
    assert "subsets: a=1, b=1" in out
    # only the first row's two items have a prompt longer than the 16-token budget
    assert "at max_length 16: 4 items: 2 prompts left-truncated, 0 responses cut at the end, 0 dropped" in out


def test_train_on_conversational_rows(tmp_path):
    rows = []
    for i in range(32):
        rows.append({"prompt": [{"role": "user", "content": f"question {i}"}],
                     "chosen": [{"role": "assistant", "content": f"good answer {i}"}],
                     "rejected": [{"role": "assistant", "content": f"bad answer {i}"}]})
    path = tmp_path / "conv.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rm"
    proc = subprocess.run(CLI + ["train", "--data", str(path), "--eval", str(path), "--output", str(out),
                                 "--epochs", "3", "--batch-size", "8", "--lr", "3e-3"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "run.json").read_text())["metrics"]["eval_accuracy"] >= 0.9
