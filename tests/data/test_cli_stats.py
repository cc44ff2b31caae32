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


def test_stats_of_a_stepwise_file_counts_steps_labels_and_first_errors(tmp_path, tokenizer, cli):
    tokenizer.save_pretrained(tmp_path / "tok")
    rows = [{"problem": "the cat", "steps": ["a dog", "the mat on", "yes"], "label": 1},  # labels 1, 0, unlabelled
            {"problem": "two", "steps": ["no", "good"], "label": -1},  # 1, 1
            {"problem": "me", "steps": ["sat sat", "the", "a", "no"], "label": 0}]  # 0, -, -, -
    path = tmp_path / "pb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = cli("data", "stats", path, "--tokenizer", tmp_path / "tok", "--max-length", "16")
    assert code == 0, err
    assert f"{path}: 3 rows, schema processbench" in out
    assert "steps per solution: mean 3.0, median 3, p95 4, max 4" in out
    assert "steps: 9, labelled correct (>= 0.5) 3, wrong 2, unlabelled 4" in out
    assert "solutions: 1 all correct, 2 with a wrong step (first wrong step, 0-based: mean 0.5, median 0.5" in out

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    lengths = [len(bos) + len(ids(r["problem"])) + sum(len(ids(s)) + len(ids("\n")) for s in r["steps"]) for r in rows]
    assert lengths == [1 + 7 + 6 + 11 + 4, 1 + 3 + 3 + 5, 1 + 2 + 8 + 4 + 2 + 3]  # bos, prompt, step + "\n" each
    assert "tokens per solution: mean 20.3, median 20, p95 28, max 29" in out
    # budget 15 after bos: row 1's steps alone (21) overflow, so its prompt goes and only step 1 (6) fits; row 2 fits
    # (11); row 3's prompt goes and its steps 8 + 4 + 2 fit, the last (3) does not
    assert ("at max_length 16: 3 items, 9 steps: 2 prompts left-truncated, 3 steps dropped beyond the budget (in 2 "
            "items), 0 steps cut at the end") in out
