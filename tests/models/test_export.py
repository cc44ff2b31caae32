"""`rewardlab export --format hf`: transformers loads the result with no missing keys and gives the same scores."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaModel

from rewardlab.cli import app
from rewardlab.errors import UserError
from rewardlab.models.checkpoint import save_reward_model
from rewardlab.models.export import export_hf
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.tiny import tiny_reward_model
from rewardlab.rewards.model import ModelReward
from rewardlab.rewards.registry import load_reward
from tests.models.hf_families import family_config, family_tokenizer, save_family

PROMPTS = ["the cat sat", "", "one two three four five six", "yes"]
RESPONSES = ["on a mat", "good answer", "no", "maybe please help me with this task now"]


def _load_hf(path):
    model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return model.eval()


@torch.no_grad()
def _hf_scores(model, seqs):
    return torch.cat([model(input_ids=torch.tensor([s])).logits[0] for s in seqs])


def test_tiny_gpt2_with_head_bias_exports_with_identical_scores(tokenizer, tmp_path):
    rm = tiny_reward_model(tokenizer, seed=1)
    with torch.no_grad():
        rm.head.bias.fill_(0.75)  # folded into ln_f's bias on export
    save_reward_model(rm, tokenizer, tmp_path / "rm")
    ours = ModelReward.from_pretrained(tmp_path / "rm", device="cpu")
    out = export_hf(tmp_path / "rm", tmp_path / "hf")
    hf = _load_hf(out)
    seqs = ours.encode(PROMPTS, RESPONSES)
    assert torch.allclose(_hf_scores(hf, seqs), ours.score(PROMPTS, RESPONSES), atol=1e-5)
    # padded batches through transformers' own pooling (pad_token_id) agree too
    from rewardlab.data.batching import pad_batch

    ids, mask = pad_batch(seqs, hf.config.pad_token_id)
    with torch.no_grad():
        batched = hf(input_ids=ids, attention_mask=mask).logits[:, 0]
    assert torch.allclose(batched, ours.score(PROMPTS, RESPONSES), atol=1e-5)
    # and rewardlab reads its own export back as an imported model, same scores
    assert torch.allclose(load_reward(str(out), device="cpu").score(PROMPTS, RESPONSES),
                          ours.score(PROMPTS, RESPONSES), atol=1e-5)


def test_rmsnorm_backbone_bias_needs_drop_bias(corpus, tmp_path):
    tok = family_tokenizer("llama", corpus)
    tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    rm = RewardModel(LlamaModel(family_config("llama", tok)), pooling="last", head_bias=True)
    with torch.no_grad():
        rm.head.bias.fill_(0.5)
    save_reward_model(rm, tok, tmp_path / "rm")
    with pytest.raises(UserError, match="--drop-bias"):
        export_hf(tmp_path / "rm", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    out = export_hf(tmp_path / "rm", tmp_path / "hf", drop_bias=True)
    ours = ModelReward.from_pretrained(tmp_path / "rm", device="cpu")
    got = _hf_scores(_load_hf(out), ours.encode(PROMPTS, RESPONSES))
    assert torch.allclose(got + 0.5, ours.score(PROMPTS, RESPONSES), atol=1e-5)  # shifted by the bias only


def test_imported_encoder_round_trips(corpus, tmp_path):
    model, tok = save_family("bert", corpus, tmp_path / "bert")
    out = export_hf(tmp_path / "bert", tmp_path / "hf")
    again = _load_hf(out)
    for name, p in model.state_dict().items():
        assert torch.equal(p, again.state_dict()[name]), name
    assert torch.allclose(load_reward(str(out), device="cpu").score(PROMPTS, RESPONSES),
                          load_reward(str(tmp_path / "bert"), device="cpu").score(PROMPTS, RESPONSES), atol=1e-6)


def test_lora_run_exports_merged(pair_rows, tmp_path):
    from rewardlab.data.validate import parse_row
    from rewardlab.train.config import TrainConfig
    from rewardlab.train.trainer import train_reward_model

    pairs = [parse_row(r)[1] for r in pair_rows]
    cfg = TrainConfig(base="tiny", output=str(tmp_path / "lora"), max_steps=3, batch_size=8, lora_r=4,
                      tiny_vocab=128)
    train_reward_model(pairs, cfg, progress=False)
    ours = ModelReward.from_pretrained(tmp_path / "lora", device="cpu")
    hf = _load_hf(export_hf(tmp_path / "lora", tmp_path / "hf"))
    assert torch.allclose(_hf_scores(hf, ours.encode(PROMPTS, RESPONSES)), ours.score(PROMPTS, RESPONSES), atol=1e-5)


def test_cli_refuses_what_transformers_cannot_represent(tokenizer, tmp_path):
    from typer.testing import CliRunner

    rm = tiny_reward_model(tokenizer, seed=0)
    save_reward_model(RewardModel(rm.backbone, pooling="mean"), tokenizer, tmp_path / "mean")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "mean"), str(tmp_path / "hf")])
    assert result.exit_code != 0 and "no transformers" in str(result.exception)
    assert not (tmp_path / "hf").exists()
