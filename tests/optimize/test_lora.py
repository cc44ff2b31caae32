"""LoRA on the policy of the optimize loops (rewardlab.optimize.lora): only the adapter trains, the reference is the
policy with its adapter disabled (no copy), and the saved policy is a plain HF causal LM with the adapter merged."""

import copy
import json

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.models.generation import sample, sequence_kl, sequence_logprobs
from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.optimize.dpo import OnlineDPOArgs, train_online_dpo
from rewardlab.optimize.lora import AdapterOff, attach_lora, detach_lora, merged_state_dict, restored
from rewardlab.optimize.raft import RAFTArgs, train_raft
from rewardlab.optimize.rloo import GRPOArgs, RLOOArgs, train_grpo, train_rloo
from rewardlab.optimize.session import Session
from tests.optimize.test_loops import LETTERS, SHORT


def pretrained_like(tokenizer, seed=0):
    """The tiny random GPT-2 with its (tied) token embeddings scaled ×3. At init (std 0.02) the logits
    ``ln_f(h) · wte`` are bounded by about ‖ln_f(h)‖·‖wte_i‖ ≈ 8 × 0.16, so with the embeddings frozen no adapter can
    make any token likelier than about 1% (measured: supervised LoRA stalls at p = 0.012, full fine-tuning reaches
    0.99); a trained LM's embeddings are far larger. ×3 gives it that headroom."""
    m = tiny_causal_lm(tokenizer, seed=seed)
    with torch.no_grad():
        m.transformer.wte.weight.mul_(3.0)
    return m


def base_weights(model):
    """The base model's weights under their own keys, whether or not an adapter is attached."""
    return {k.replace(".base_layer.", "."): v.detach().clone() for k, v in model.state_dict().items()
            if ".lora_" not in k}


def randomize_adapter(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def batch(tokenizer, corpus, n=6):
    prompt_ids = [tokenizer(c)["input_ids"][:6] for c in corpus[:n]]
    response_ids = [tokenizer(c)["input_ids"][:5] for c in corpus[n:2 * n]]
    return prompt_ids, response_ids


def test_reference_is_the_base_model_with_the_adapter_disabled(tokenizer, corpus):
    plain = pretrained_like(tokenizer)
    policy = copy.deepcopy(plain)
    peft_model = attach_lora(policy, r=4)
    randomize_adapter(policy)
    ref = AdapterOff(policy, peft_model)
    p_ids, r_ids = batch(tokenizer, corpus)
    pad = tokenizer.pad_token_id
    with torch.no_grad():
        ref_lp, mask = sequence_logprobs(ref, p_ids, r_ids, pad)
        plain_lp, _ = sequence_logprobs(plain, p_ids, r_ids, pad)
        adapted_lp, _ = sequence_logprobs(policy, p_ids, r_ids, pad)
    assert torch.allclose(ref_lp, plain_lp, atol=1e-6, rtol=0)  # fp32
    assert (adapted_lp - plain_lp).abs().max() > 1e-2  # the adapter is on outside the reference's forwards
    assert list(ref.parameters()) == list(policy.parameters()) and not list(ref.children())  # a view, no copy
    # generation from the reference (its KV-cache keyword found through its forward) samples the base model
    a = sample(ref, tokenizer, corpus[:3], 2, 6, seed=5)
    b = sample(plain, tokenizer, corpus[:3], 2, 6, seed=5)
    assert a.response_ids == b.response_ids


def test_fresh_adapter_starts_at_the_reference_with_zero_kl(tokenizer, corpus):
    policy = pretrained_like(tokenizer)
    before = base_weights(policy)
    s = Session(policy, tokenizer, LETTERS, corpus[:16], RLOOArgs(lora_r=4, **SHORT), progress=False)
    assert isinstance(s.ref, AdapterOff)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert {id(p) for p in s.trainable} == {id(p) for p in policy.parameters() if p.requires_grad}
    assert {id(p) for g in s.optimizer.param_groups for p in g["params"]} == {id(p) for p in s.trainable}
    p_ids, r_ids = batch(tokenizer, corpus)
    with torch.no_grad():
        lp, mask = sequence_logprobs(policy, p_ids, r_ids, s.pad_id)
        ref_lp, _ = sequence_logprobs(s.ref, p_ids, r_ids, s.pad_id)
    assert torch.equal(lp, ref_lp)  # B = 0: the adapter adds exactly nothing
    assert sequence_kl(lp, ref_lp, mask).abs().max() == 0
    assert s.evaluate(0)["kl"] == 0.0
    assert all(torch.equal(v, before[k]) for k, v in base_weights(policy).items())


def test_rloo_with_lora_raises_the_proxy_and_changes_only_the_adapter(tokenizer, corpus, tmp_path):
    """Robustness of the gain: 20 AdamW steps at lr 1e-2 with r = 4 raised the letters proxy by 0.26 (seed 0;
    0.16 to 0.37 over seeds 0-3, 0.14 to 0.48 over six seeds at 30 steps), so > 0.1 leaves a margin."""
    from transformers import AutoModelForCausalLM

    policy = pretrained_like(tokenizer)
    before = base_weights(policy)
    args = RLOOArgs(steps=20, k=4, lr=1e-2, eval_every=0, lora_r=4, **SHORT)
    summary = train_rloo(policy, tokenizer, LETTERS, corpus[:64], args, output_dir=tmp_path, progress=False)
    ev = summary["evaluations"]
    assert ev[0]["kl"] == 0.0 and ev[-1]["proxy_mean"] - ev[0]["proxy_mean"] > 0.1, ev  # measured 0.305 -> 0.562
    after = base_weights(policy)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert any(p.abs().max() > 0 for n, p in policy.named_parameters() if "lora_B" in n)
    assert summary["args"]["lora_r"] == 4

    # policy/ is a plain HF causal LM holding the merged weights: it computes what the adapted policy computes
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "policy").eval()
    assert not any("lora" in k for k in saved.state_dict())
    assert not (tmp_path / "policy" / "adapter_config.json").exists()
    ids = torch.tensor([tokenizer(corpus[0])["input_ids"][:10]])
    with torch.no_grad():
        assert torch.allclose(saved(input_ids=ids).logits, policy(input_ids=ids).logits, atol=1e-5)
    assert (tmp_path / "checkpoint" / "adapter" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "checkpoint" / "policy").exists()

    detach_lora(policy)  # the base back, untouched
    assert {k: v for k, v in policy.state_dict().items()}.keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in policy.state_dict().items())
    assert all(p.requires_grad for p in policy.parameters())


def test_merged_state_dict_is_what_peft_merges(tokenizer):
    policy = pretrained_like(tokenizer)
    peft_model = attach_lora(policy, r=4, alpha=8)
    randomize_adapter(policy)
    ours = merged_state_dict(policy)
    theirs = copy.deepcopy(peft_model).merge_and_unload().state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-7, rtol=0) for k in ours)


def test_lora_target_names_modules(tokenizer):
    policy = pretrained_like(tokenizer)
    attach_lora(policy, r=2, target="c_attn")
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all(".attn.c_attn.lora_" in n for n in trainable)
    with pytest.raises(ValueError, match="already holds a LoRA adapter"):
        attach_lora(policy, r=2)
    with pytest.raises(UserError, match="--lora-r and --lora-alpha must be > 0"):
        attach_lora(pretrained_like(tokenizer), r=0)
    plain = pretrained_like(tokenizer)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    with pytest.raises(UserError, match="lm_head shares its weight with another module"):
        attach_lora(plain, r=2, target="lm_head")  # GPT-2 ties it to the token embeddings
    with pytest.raises(UserError, match="--lora-target 'ln_9': .*not found"):
        attach_lora(plain, r=2, target="ln_9")
    assert plain.state_dict().keys() == before.keys()  # a refused adapter is removed again
    assert all(p.requires_grad for p in plain.parameters())


def test_restored_puts_the_model_back(tokenizer, corpus):
    policy = pretrained_like(tokenizer)
    policy.transformer.wpe.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    grads = [p.requires_grad for p in policy.parameters()]
    with restored(policy):
        train_rloo(policy, tokenizer, LETTERS, corpus[:16], RLOOArgs(steps=2, k=2, lr=1e-2, lora_r=2, **SHORT),
                   progress=False)
    assert policy.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in policy.state_dict().items())
    assert [p.requires_grad for p in policy.parameters()] == grads
    assert all(m.p == 0.1 for m in policy.modules() if isinstance(m, torch.nn.Dropout))  # GPT-2's default


def test_resume_with_lora_continues_exactly(tokenizer, corpus, tmp_path):
    def run(steps, out, resume=False, lora_r=4):
        args = RLOOArgs(steps=steps, k=2, lr=1e-2, eval_every=2, save_every=2, resume=resume, lora_r=lora_r, **SHORT)
        m = pretrained_like(tokenizer)
        return m, train_rloo(m, tokenizer, LETTERS, corpus[:32], args, output_dir=out, progress=False)

    full, s_full = run(4, tmp_path / "full")
    run(2, tmp_path / "cut")
    resumed, s_res = run(4, tmp_path / "cut", resume=True)
    for (ka, a), (kb, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert ka == kb and torch.allclose(a, b, atol=1e-6), ka
    for a, b in zip(s_res["evaluations"], s_full["evaluations"], strict=True):
        assert a == pytest.approx(b)
    with pytest.raises(UserError, match="resume with the --lora-r it was saved with \\(4\\)"):
        run(6, tmp_path / "cut", resume=True, lora_r=0)


@pytest.mark.parametrize("algo", ["grpo", "raft", "dpo"])
def test_every_loop_trains_only_the_adapter(tokenizer, corpus, tmp_path, algo):
    policy = pretrained_like(tokenizer)
    before = base_weights(policy)
    small = dict(max_new_tokens=8, eval_prompts=4, eval_samples=2, lora_r=4)
    if algo == "grpo":
        s = train_grpo(policy, tokenizer, LETTERS, corpus[:32], GRPOArgs(steps=2, k=4, lr=1e-2, **small),
                       output_dir=tmp_path, progress=False)
    elif algo == "raft":
        s = train_raft(policy, tokenizer, LETTERS, corpus[:32], RAFTArgs(steps=1, k=4, prompts_per_step=8, lr=1e-2,
                                                                        **small), output_dir=tmp_path, progress=False)
    else:
        s = train_online_dpo(policy, tokenizer, LETTERS, corpus[:32],
                             OnlineDPOArgs(steps=2, k=4, prompts_per_step=8, lr=1e-2, ref="previous", **small),
                             output_dir=tmp_path, progress=False)
    assert s["evaluations"][0]["kl"] == 0.0 and s["evaluations"][-1]["kl"] > 0
    assert all(torch.equal(v, before[k]) for k, v in base_weights(policy).items())
    assert json.loads((tmp_path / "summary.json").read_text())["args"]["lora_r"] == 4
    assert (tmp_path / "policy" / "model.safetensors").exists()
