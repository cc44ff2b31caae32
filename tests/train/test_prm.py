"""PRM training: the BCE loss by hand, which steps get targets, learning a step-level signal, resuming to identical
weights, and `rewardlab train --objective prm`."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file

from rewardlab.data.step_encode import StepEncoder
from rewardlab.data.stepwise import parse_stepwise_row
from rewardlab.train.prm import PRMConfig, build_prm, encode_step_data, evaluate_steps, prm_bce_loss, train_prm

WORDS = "the cat dog sat ran on a mat big small red blue one two three".split()


def step_rows(n: int, seed: int = 0) -> list[dict]:
    """Solutions whose wrong steps start with 'bad' (a signal a tiny model learns), labels as TRL booleans."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(1, 4)
        labels = [rng.random() < 0.6 for _ in range(k)]
        steps = [("good " if ok else "bad ") + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
                 for ok in labels]
        rows.append({"prompt": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))), "completions": steps,
                     "labels": labels})
    return rows


def examples(rows):
    return [parse_stepwise_row(r)[1] for r in rows]


def test_bce_loss_by_hand_and_unlabelled_positions_get_no_gradient():
    z = torch.tensor([[0.0, 5.0, 2.0], [-1.0, 3.0, 7.0]], requires_grad=True)
    y = torch.tensor([[1.0, math.nan, 0.0], [0.5, math.nan, math.nan]])
    loss, labelled = prm_bce_loss(z, y)
    # softplus(z) − y·z:  ln 2 = 0.693147;  ln(1 + e²) = 2.126928;  ln(1 + e⁻¹) + 0.5 = 0.813262
    assert loss.item() == pytest.approx((0.693147 + 2.126928 + 0.813262) / 3, abs=1e-6)
    assert labelled.tolist() == [[True, False, True], [True, False, False]]
    loss.backward()
    assert z.grad[0, 1] == 0 and z.grad[1, 1] == 0 and z.grad[1, 2] == 0 and z.grad[0, 0] != 0
    none, _ = prm_bce_loss(z, torch.full_like(y, math.nan))
    assert none.item() == 0 and none.requires_grad


def test_targets_last_step_only_and_processbench_rows(tokenizer):
    rows = [{"prompt": "p", "completions": ["the cat", "a mat", "red"], "labels": [True, False, 0.25]},
            {"problem": "q", "steps": ["one", "two", "three"], "label": 0},  # last step unlabelled
            {"problem": "q", "steps": ["one", "two"], "label": -1}]
    data = encode_step_data(examples(rows), StepEncoder(tokenizer, 64))
    assert [[None if math.isnan(v) else v for v in t] for t in data.targets] == \
        [[1.0, 0.0, 0.25], [0.0, None, None], [1.0, 1.0]]
    last = encode_step_data(examples(rows), StepEncoder(tokenizer, 64), last_step_only=True)
    assert last.no_target == 1 and len(last) == 2  # the ProcessBench row erring at step 0 has no last-step label
    assert [[None if math.isnan(v) else v for v in t] for t in last.targets] == [[None, None, 0.25], [None, 1.0]]
    assert last.data_hash != data.data_hash


def test_training_learns_step_labels(tmp_path):
    train, held = examples(step_rows(192, 0)), examples(step_rows(32, 1))
    cfg = PRMConfig(output=str(tmp_path / "prm"), epochs=8, batch_size=8, max_length=64, tiny_embd=32, lr=3e-3)
    untrained, tok = build_prm(cfg, train)  # the control: an untrained model is near the base rate
    held_enc = encode_step_data(held, StepEncoder(tok, 64))
    assert evaluate_steps(untrained, held_enc, tok.pad_token_id, "cpu")["eval_step_accuracy"] < 0.8
    summary = train_prm(train, cfg, held, progress=False)
    assert summary["metrics"]["eval_step_accuracy"] >= 0.9, summary["metrics"]
    manifest = json.loads((tmp_path / "prm" / "rewardlab.json").read_text())
    assert manifest["kind"] == "prm" and manifest["steps"]["separator"] == "\n"
    from rewardlab.rewards.registry import load_reward

    reward = load_reward(f"prm:{tmp_path / 'prm'}:min", device="cpu")
    scores = reward.step_scores(["the cat"], ["good one two three\nbad red blue one\ngood a mat cat"])[0]
    assert scores[0] > 0.5 > scores[1] and scores[2] > 0.5


def test_resume_from_a_mid_epoch_checkpoint_gives_identical_weights(tmp_path):
    ex = examples(step_rows(32, 2))
    kw = dict(epochs=2, batch_size=4, max_length=64, tiny_layers=1, tiny_embd=32, save_every=5, log_every=1,
              keep_checkpoints=10, disable_dropout=False)  # dropout on: the RNG state must be restored too
    train_prm(ex, PRMConfig(output=str(tmp_path / "ref"), **kw), progress=False)
    shutil.copytree(tmp_path / "ref", tmp_path / "cut")
    cut = tmp_path / "cut"
    for f in ("model.safetensors", "rewardlab.json", "run.json"):
        (cut / f).unlink()
    for ck in sorted((cut / "checkpoints").glob("step-*")):
        if int(ck.name.split("-")[1]) > 5:  # as if killed after step 5 (mid-epoch: 8 steps an epoch)
            shutil.rmtree(ck)
    log = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    (cut / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log if r["step"] <= 5 and "loss" in r))
    train_prm(ex, PRMConfig(output=str(cut), **kw), resume=True, progress=False)
    steps = [r["step"] for r in map(json.loads, (cut / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == list(range(1, 17))  # the resumed run did steps 6..16 only (from scratch would repeat 1..5)
    a, b = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)


def test_cli_trains_and_refuses_bad_input(tmp_path, cli):
    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in step_rows(24)))
    code, out, err = cli("train", "--objective", "prm", "--data", data, "--output", tmp_path / "o", "--epochs", "1",
                         "--batch-size", "8", "--max-length", "64",
                         "--step-separator", "\\n\\n", "--last-step-only")
    assert code == 0, err
    manifest = json.loads((tmp_path / "o" / "rewardlab.json").read_text())
    assert manifest["steps"]["separator"] == "\n\n" and manifest["last_step_only"] is True
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completions": ["a"]}) + "\n")
    code, _, err = cli("train", "--objective", "prm", "--data", bad, "--output", tmp_path / "b")
    assert code == 2 and f"{bad}:1: field 'labels' missing" in err and not (tmp_path / "b").exists()
    code, _, err = cli("train", "--objective", "prm", "--data", data, "--output", tmp_path / "c", "--centering", "0.1")
    assert code == 2 and "--centering: does not apply to --objective prm (only to bt)" in err
    code, _, err = cli("train", "--data", data, "--output", tmp_path / "d", "--step-separator", ";")
    assert code == 2 and "--step-separator: does not apply to --objective bt (only to prm)" in err


def test_fine_tunes_an_imported_two_label_token_classifier(tmp_path, corpus):
    from rewardlab.models.formats.prm import load_prm
    from tests.models.test_prm import save_token_classifier

    save_token_classifier("gpt2", corpus, tmp_path / "trl", 2)  # what TRL's PRMTrainer saves
    before, tok, _ = load_prm(tmp_path / "trl")
    ex = examples(step_rows(16, 3))
    cfg = PRMConfig(base=str(tmp_path / "trl"), output=str(tmp_path / "ft"), max_steps=2, batch_size=8, lr=1e-3)
    train_prm(ex, cfg, progress=False)
    after, _, manifest = load_prm(tmp_path / "ft")
    assert manifest["head"] == {"kind": "prm", "num_labels": 2, "head": "native", "head_bias": True}
    ids = torch.tensor([StepEncoder(tok, 64).encode(ex[0].prompt, ex[0].steps).ids])
    with torch.no_grad():
        z0, z1 = before(ids, torch.ones_like(ids)), after(ids, torch.ones_like(ids))
    assert not torch.allclose(z0, z1)  # trained (the head kept, not replaced: same architecture, moved weights)
    assert after.backbone.classifier.weight.shape == (2, before.backbone.classifier.in_features)
