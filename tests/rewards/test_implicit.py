import pytest
import torch

from rewardlab.data.tokenize import TruncationStats
from rewardlab.errors import UserError
from rewardlab.models.policy_logps import policy_inputs
from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.rewards.implicit import ImplicitDPOReward, implicit_reward
from rewardlab.rewards.registry import load_reward


def hand_logp(model, tokenizer, prompt: str, response: str) -> float:
    """log π(response + eos | prompt) from one unpadded forward, summed by hand over the response tokens."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([p + r])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return sum(logp[len(p) + t - 1, tok].item() for t, tok in enumerate(r))


@pytest.fixture(scope="module")
def models(tokenizer):
    return tiny_causal_lm(tokenizer, seed=1), tiny_causal_lm(tokenizer, seed=2)


def test_implicit_reward_matches_hand_computation(models, tokenizer, corpus):
    policy, ref = models
    prompts, responses = corpus[:5], [corpus[5], "yes", corpus[7] + " " + corpus[8], "no no", corpus[9]]
    r = ImplicitDPOReward(policy, ref, tokenizer, beta=0.5, batch_size=2)  # mixed lengths, several batches
    want = [0.5 * (hand_logp(policy, tokenizer, p, y) - hand_logp(ref, tokenizer, p, y))
            for p, y in zip(prompts, responses)]
    torch.testing.assert_close(r.score(prompts, responses), torch.tensor(want, dtype=torch.float32),
                               atol=1e-4, rtol=1e-4)
    assert implicit_reward(torch.tensor([-1.0]), torch.tensor([-3.0]), 0.1).item() == pytest.approx(0.2)
    same = ImplicitDPOReward(policy, policy, tokenizer)  # π = π_ref → reward 0
    assert same.score(prompts[:2], responses[:2]).abs().max().item() == 0.0


def test_spec_loads_saved_policy_and_reference(models, tokenizer, corpus, tmp_path):
    policy, ref = models
    for name, m in (("pol", policy), ("ref", ref)):
        m.save_pretrained(tmp_path / name, safe_serialization=True)
        tokenizer.save_pretrained(tmp_path / name)
    loaded = load_reward(f"dpo:{tmp_path / 'pol'}:{tmp_path / 'ref'}:0.5")
    direct = ImplicitDPOReward(policy, ref, tokenizer, beta=0.5)
    torch.testing.assert_close(loaded.score(corpus[:3], corpus[3:6]), direct.score(corpus[:3], corpus[3:6]))
    with pytest.raises(UserError, match="reference"):
        load_reward(f"dpo:{tmp_path / 'pol'}")  # no manifest naming the reference
    with pytest.raises(UserError):
        load_reward(f"dpo:{tmp_path / 'pol'}:{tmp_path / 'ref'}:beta")


def test_conversations_and_truncation(models, tokenizer):
    policy, ref = models
    conv = [{"role": "user", "content": "the cat"}]
    p_ids, r_ids = policy_inputs(tokenizer, conv, [{"role": "assistant", "content": "sat on a mat"}])
    text = tokenizer.decode(p_ids + r_ids)
    assert text.startswith("<|user|> the cat") and "<|assistant|>" in text and r_ids[-1] == tokenizer.eos_token_id
    stats = TruncationStats()
    p_ids, r_ids = policy_inputs(tokenizer, "a " * 50, "b " * 50, max_length=20, stats=stats)
    assert len(p_ids) + len(r_ids) == 20 and len(p_ids) == 1  # the response keeps all but one slot
    p_ids, r_ids = policy_inputs(tokenizer, "a " * 50, "b", max_length=20, stats=stats)
    assert len(p_ids) + len(r_ids) == 20 and r_ids[-1] == tokenizer.eos_token_id  # only the prompt was cut
    policy_inputs(tokenizer, "a", "b", max_length=20, stats=stats)
    assert (stats.items, stats.prompt_truncated, stats.response_truncated) == (3, 2, 1)
    r = ImplicitDPOReward(policy, ref, tokenizer)
    assert r.score([conv], ["sat on a mat"]).shape == (1,)
