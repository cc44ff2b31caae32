"""The format seam (:mod:`rewardlab.models.formats`): every kind of model directory, built the way the other tests
build it, is detected as its format, loads, peeks and dispatches to its Reward class; and the on-disk layout that
today's save functions write is pinned (file names, manifest keys, weight names), so a change of layout fails here.

The ``test_layout_*`` tests and the ``dirs`` fixture use only the save APIs that predate the seam
(``models.checkpoint.save_reward_model``, ``rewards.personalized.save_mixture``, ``train_armo``, ``train_dpo``): they
pass on the code before it too (checked by running them against that tree), which is what "layout unchanged" means.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from rewardlab.data.records import PreferencePair
from rewardlab.data.step_encode import StepFormat
from rewardlab.errors import UserError
from rewardlab.models.checkpoint import save_reward_model
from rewardlab.models.prm import ProcessRewardModel
from rewardlab.models.tiny import tiny_causal_lm, tiny_gpt2_config, tiny_reward_model
from tests.conftest import sentence
from tests.models.hf_families import save_family, save_openrlhf
from tests.models.test_peft_import import adapter  # noqa: F401  (a fixture)
from tests.models.test_prm import save_token_classifier
from tests.rewards.test_judge_personalized_e2e import save_tiny_mixture
from tests.rewards.test_multiobjective import armo_dir  # noqa: F401  (a fixture)
from tests.train.test_dpo import dpo_run

# directory -> the format it is (None: no format; the pooled loader says why it is no reward model)
EXPECTED = {"bt": "rewardlab", "bt_k2": "rewardlab", "legacy_bt": "rewardlab", "prm": "prm",
            "token_classifier": "prm", "micro": "micro", "dpo": "dpo", "armo": "armo", "peft": "peft",
            "openrlhf": "openrlhf", "transformers": "transformers", "causal_lm": None, "empty": None}
CHECKPOINT_FILES = {"config.json", "model.safetensors", "rewardlab.json"}  # + the tokenizer's own files
MANIFEST_KEYS = ["format_version", "head", "versions", "rendering"]  # first, in this order, then the caller's
RENDERING_KEYS = {"decoder", "single", "pair", "append_eos", "chat_template"}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, tokenizer, corpus, armo_dir, adapter) -> dict[str, Path]:  # noqa: F811
    """One directory of each kind, each made by the code (or test helper) that makes it elsewhere."""
    from transformers import GPT2Model

    root = tmp_path_factory.mktemp("formats")
    d = {name: root / name for name in EXPECTED}
    save_reward_model(tiny_reward_model(tokenizer, seed=2), tokenizer, d["bt"], manifest={"max_length": 64})
    save_reward_model(tiny_reward_model(tokenizer, num_outputs=2, seed=3), tokenizer, d["bt_k2"],
                      manifest={"attributes": ["a", "b"]})
    save_reward_model(tiny_reward_model(tokenizer, seed=2), tokenizer, d["legacy_bt"])  # a manifest from before
    manifest = json.loads((d["legacy_bt"] / "rewardlab.json").read_text())  # rendering was recorded
    del manifest["rendering"]
    (d["legacy_bt"] / "rewardlab.json").write_text(json.dumps(manifest))
    torch.manual_seed(0)
    prm = ProcessRewardModel(GPT2Model(tiny_gpt2_config(tokenizer, n_layer=1, n_embd=32))).eval()
    save_reward_model(prm, tokenizer, d["prm"], manifest={"kind": "prm", "steps": StepFormat("\n\n").to_dict(),
                                                          "max_length": 77})
    save_token_classifier("gpt2", corpus, d["token_classifier"], 2)
    save_tiny_mixture(tokenizer, d["micro"])
    rng = random.Random(5)
    pairs = [PreferencePair(sentence(rng), "good " + sentence(rng), "bad " + sentence(rng)) for _ in range(16)]
    dpo_run(pairs, d["dpo"])
    d["armo"] = armo_dir[0]
    d["peft"] = adapter[0] / "adapter"
    save_openrlhf(corpus, d["openrlhf"])
    save_family("gpt2", corpus, d["transformers"])
    tiny_causal_lm(tokenizer, seed=1).save_pretrained(d["causal_lm"], safe_serialization=True)
    tokenizer.save_pretrained(d["causal_lm"])
    d["empty"].mkdir()
    return d


def _tokenizer_files(tokenizer, tmp_path) -> set[str]:
    tokenizer.save_pretrained(tmp_path / "tok")
    return {f.name for f in (tmp_path / "tok").iterdir()}


def _weight_names(path: Path) -> set[str]:
    with safe_open(str(path), framework="pt") as f:
        return set(f.keys())


def _files(path: Path) -> set[str]:
    return {f.name for f in path.iterdir()}


# ------------------------------------------------------------------------------------------------ the layouts


def test_layout_of_a_rewardlab_checkpoint(dirs, tokenizer, tmp_path):
    d = dirs["bt"]
    assert _files(d) == CHECKPOINT_FILES | _tokenizer_files(tokenizer, tmp_path)
    manifest = json.loads((d / "rewardlab.json").read_text())
    assert list(manifest) == MANIFEST_KEYS + ["max_length"] and manifest["format_version"] == 1
    assert manifest["head"] == {"num_outputs": 1, "pooling": "last", "head": "linear"}
    assert set(manifest["versions"]) == {"rewardlab", "torch", "transformers", "tokenizers"}
    assert set(manifest["rendering"]) == RENDERING_KEYS
    names = set(tiny_reward_model(tokenizer, seed=2).state_dict())  # backbone.* (HF names) + head.weight/bias
    assert _weight_names(d / "model.safetensors") == names and {"head.weight", "head.bias"} <= names
    with safe_open(str(d / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
    prm = json.loads((dirs["prm"] / "rewardlab.json").read_text())
    assert prm["kind"] == "prm" and prm["head"] == {"kind": "prm", "num_labels": 1, "head": "linear", "head_bias": True}


def test_layout_of_a_mixture_armorm_and_dpo_run(dirs, tokenizer, tmp_path):
    tok_files = _tokenizer_files(tokenizer, tmp_path)
    micro = dirs["micro"]
    assert _files(micro) == CHECKPOINT_FILES | tok_files | {"router.safetensors"}
    manifest = json.loads((micro / "rewardlab.json").read_text())
    assert list(manifest) == MANIFEST_KEYS + ["personalized"]
    assert manifest["personalized"] == {"k": 2, "router": "router.safetensors", "kind": "micro"}
    assert _weight_names(micro / "router.safetensors") == {"weight", "bias"}

    armo = dirs["armo"]
    assert {"armo.safetensors", "run.json"} | CHECKPOINT_FILES <= _files(armo)
    manifest = json.loads((armo / "rewardlab.json").read_text())
    assert list(manifest) == MANIFEST_KEYS + ["max_length", "attributes", "armo"]
    assert set(manifest["armo"]) == {"attributes", "verbosity", "ridge", "gate_hidden", "gate_layers", "base"}
    gate = _weight_names(armo / "armo.safetensors")
    assert "decorrelation" in gate and {"gate.in_mean", "gate.in_std", "gate.log_beta"} <= gate

    dpo = dirs["dpo"]
    assert {"config.json", "model.safetensors", "rewardlab_dpo.json", "run.json", "metrics.jsonl",
            "reference"} <= _files(dpo)
    info = json.loads((dpo / "rewardlab_dpo.json").read_text())
    assert list(info) == ["objective", "beta", "reference", "max_length", "base", "data_hash", "truncation",
                          "metrics"]
    assert info["objective"] == "dpo" and info["reference"] == "reference"
    assert {"config.json", "model.safetensors"} <= _files(dpo / "reference")


# ------------------------------------------------------------------------------------------------ the seam


def test_every_directory_is_detected_as_its_format(dirs, tmp_path):
    from rewardlab.models.formats import FORMATS, detect

    assert [f.name for f in FORMATS] == ["prm", "micro", "dpo", "armo", "rewardlab", "peft", "openrlhf",
                                         "transformers"]
    got = {name: getattr(detect(d), "name", None) for name, d in dirs.items()}
    assert got == EXPECTED
    assert detect(dirs["bt"] / "rewardlab.json") is None and detect(tmp_path / "nowhere") is None
    both = tmp_path / "prm_and_router"  # the table's order decides: a PRM manifest wins over a router file
    both.mkdir()
    (both / "rewardlab.json").write_text(json.dumps({"kind": "prm"}))
    (both / "router.safetensors").write_bytes(b"")
    assert detect(both).name == "prm"


def test_peek_reads_the_manifest_without_the_weights(dirs, tmp_path):
    from rewardlab.models.formats import peek

    for name in ("bt", "micro", "dpo"):  # no weights read: a directory whose weight files are empty peeks the same
        copy = tmp_path / name
        copy.mkdir()
        for f in dirs[name].iterdir():
            if f.is_file():
                (copy / f.name).write_bytes(b"" if f.suffix == ".safetensors" else f.read_bytes())
        assert peek(copy).format.name == EXPECTED[name] and peek(copy).manifest == peek(dirs[name]).manifest
    assert peek(dirs["bt"]).manifest["max_length"] == 64
    assert peek(dirs["dpo"]).manifest["reference"] == "reference"
    assert peek(dirs["transformers"]).manifest == {} and peek(dirs["empty"]).format is None


def test_each_format_loads_with_its_rendering_once(dirs):
    from rewardlab.data.tokenize import Rendering
    from rewardlab.models.formats import load

    for name, fmt in EXPECTED.items():
        if fmt is None:
            with pytest.raises(UserError, match="not a reward model"):
                load(dirs[name])
            continue
        loaded = load(dirs[name])
        assert loaded.format.name == fmt and loaded.path == dirs[name] and loaded.tokenizer is not None, name
        if fmt != "dpo":  # a policy run has no rendering: it scores log-probs of the policy's own template
            assert loaded.rendering is not None and loaded.manifest["rendering"] == loaded.rendering.to_dict(), name
    legacy = load(dirs["legacy_bt"])  # a manifest from before renderings were recorded: derived from the tokenizer
    assert legacy.rendering == Rendering.for_tokenizer(legacy.tokenizer, decoder=True)
    model, tokenizer, manifest = load(dirs["bt"])  # unpacks as the loaders' old tuple
    assert model.rendering is not None and manifest["max_length"] == 64


def test_the_pooled_view_and_the_chat_template_override(dirs):
    from rewardlab.models.formats import load_reward_model, pooled_format

    for name in ("bt", "micro", "armo", "peft", "openrlhf", "transformers"):  # one pooled RewardModel each
        assert load_reward_model(dirs[name]).model.num_outputs >= 1, name
    assert pooled_format(dirs["micro"]).name == "rewardlab" and pooled_format(dirs["dpo"]) is None
    with pytest.raises(UserError, match="a process reward model"):
        load_reward_model(dirs["prm"])
    for name in ("dpo", "causal_lm", "token_classifier", "empty"):
        with pytest.raises(UserError, match="not a reward model"):
            load_reward_model(dirs[name])
    loaded = load_reward_model(dirs["bt"], chat_template="{{ messages }}")
    assert loaded.rendering.chat_template == "{{ messages }}" == loaded.model.rendering.chat_template
    assert loaded.manifest["rendering"]["chat_template"] == "{{ messages }}"


def test_the_registry_scores_each_format_with_its_reward_class(dirs):
    from rewardlab.rewards.implicit import ImplicitDPOReward
    from rewardlab.rewards.model import ModelReward
    from rewardlab.rewards.multiobjective import ArmoReward
    from rewardlab.rewards.personalized import MixtureReward
    from rewardlab.rewards.prm import PRMReward
    from rewardlab.rewards.registry import load_reward

    classes = {"rewardlab": ModelReward, "prm": PRMReward, "micro": MixtureReward, "dpo": ImplicitDPOReward,
               "armo": ArmoReward, "peft": ModelReward, "openrlhf": ModelReward, "transformers": ModelReward}
    for name, fmt in EXPECTED.items():
        if fmt is None:
            with pytest.raises(UserError, match="not a reward model"):
                load_reward(str(dirs[name]), device="cpu")
            continue
        reward = load_reward(str(dirs[name]), device="cpu")
        assert type(reward) is classes[fmt], name
        assert torch.isfinite(reward.score(["the cat"], ["sat on a mat"]).float()).all(), name
