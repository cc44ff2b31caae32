"""Streaming, compact tokenization of training pairs; ties created by truncation are counted (and dropped)."""

import json

import numpy as np
import pytest

from rewardlab.data.records import PreferencePair
from rewardlab.data.tokenize import PairEncoder
from rewardlab.train.config import TrainConfig
from rewardlab.train.encode import TokenStore, data_hash, encode_pairs
from rewardlab.train.trainer import train_reward_model

SHARED = " ".join(["the cat sat on the mat"] * 6)


def test_token_store_is_flat_int32_and_round_trips():
    seqs = [[5, 6, 7], [], [300, 70000, 1], [2]]
    store = TokenStore()
    for s in seqs:
        store.append(s)
    assert len(store) == 4 and [list(store[i]) for i in range(4)] == seqs
    assert list(store[-1]) == [2] and store[0].dtype == np.int32
    assert list(store.lengths()) == [3, 0, 3, 1] and store.num_tokens == 7
    assert store.nbytes == 4 * 7 + 8 * 5  # 4 bytes a token + 8 an offset: no per-int Python objects
    with pytest.raises(IndexError):
        store[4]
    with pytest.raises(RuntimeError):
        store.append([1])  # read once: frozen


def test_encode_takes_a_one_pass_iterator_and_matches_the_encoder(tokenizer, pair_rows):
    pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"], margin=i / 10, weight=1 + i % 3)
             for i, r in enumerate(pair_rows)]
    data = encode_pairs(iter(pairs), tokenizer, max_length=24)  # a generator: read once, nothing kept
    enc = PairEncoder(tokenizer, max_length=24)
    for i in (0, 17, 63):
        assert list(data.chosen[i]) == enc.encode(pairs[i].prompt, pairs[i].chosen)
        assert list(data.rejected[i]) == enc.encode(pairs[i].prompt, pairs[i].rejected)
    assert data.margin[17] == pytest.approx(1.7) and data.weight[17] == 3
    assert data.data_hash == data_hash(pairs) and len(data.data_hash) == 16
    assert data.stats.items == 2 * 64 and data.counts.used == data.counts.read == 64
    assert list(data.lengths()[:3]) == [max(len(data.chosen[i]), len(data.rejected[i])) for i in range(3)]


def tie_pairs() -> list[PreferencePair]:
    """Two pairs that differ only after the first ~30 tokens (ties at max_length 16) and three that do not."""
    return [PreferencePair("", f"{SHARED} good {i}", f"{SHARED} bad {i}") for i in range(2)] + [
        PreferencePair("q", f"good {i}", f"bad {i}") for i in range(3)]


def test_ties_after_truncation_are_counted_and_dropped_by_default(tokenizer):
    dropped = encode_pairs(tie_pairs(), tokenizer, max_length=16)
    assert dropped.counts.as_dict() == {"read": 5, "dropped_overlong": 0, "ties": 2, "ties_dropped": 2, "used": 3,
                                      "drop_ties": True}
    assert "2 tied after truncation" in dropped.counts.summary() and "dropped" in dropped.counts.summary()
    kept = encode_pairs(tie_pairs(), tokenizer, max_length=16, drop_ties=False)
    assert kept.counts.ties == 2 and kept.counts.ties_dropped == 0 and len(kept) == 5
    assert "(identical token ids, no signal: kept)" in kept.counts.summary()
    assert list(kept.chosen[0]) == list(kept.rejected[0])
    assert encode_pairs(tie_pairs(), tokenizer, max_length=512).counts.ties == 0  # room enough: no ties


def test_overlong_drops_are_counted_per_pair(tokenizer):
    data = encode_pairs(tie_pairs(), tokenizer, max_length=16, overlong="drop")
    assert data.counts.dropped_overlong == 2 and data.counts.ties == 0 and data.counts.used == 3


def test_ties_are_reported_in_run_json_and_the_manifest(tmp_path, capsys):
    pairs = tie_pairs() * 4
    cfg = TrainConfig(output=str(tmp_path / "rm"), batch_size=4, max_steps=1, max_length=16, tiny_layers=1,
                      tiny_embd=32, tiny_vocab=128)
    summary = train_reward_model(pairs, cfg, progress=False)
    assert "8 tied after truncation" in capsys.readouterr().out
    run = json.loads((tmp_path / "rm" / "run.json").read_text())
    assert run["pairs"]["train"]["ties"] == 8 and run["pairs"]["train"]["used"] == 12
    assert summary["metrics"]["train_pairs"] == 12
    manifest = json.loads((tmp_path / "rm" / "rewardlab.json").read_text())
    assert manifest["pairs"]["train"]["ties_dropped"] == 8
