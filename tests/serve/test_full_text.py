"""Full-text protocols: OpenRLHF queries split at their prompt, over-long texts keep their end, labels reach rules."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.registry import load_reward
from rewardlab.serve.app import create_app

PROMPT = "please help me with this task now " * 4  # 136 characters: alone over the 64-token budget
RESPONSE = "yes the cat sat on a mat"


def get_reward(reward, query, prompts=None, labels=None) -> dict:
    with TestClient(create_app(reward), raise_server_exceptions=False) as c:
        body = {"query": query} | ({"prompts": prompts} if prompts is not None else {}) | \
            ({"labels": labels} if labels is not None else {})
        return c.post("/get_reward", json=body).json()


def test_overlong_query_is_split_at_its_prompt_and_keeps_the_response(model_reward, tokenizer):
    query = PROMPT + RESPONSE + tokenizer.eos_token  # OpenRLHF decodes with special tokens kept
    assert len(tokenizer(PROMPT + RESPONSE)["input_ids"]) > model_reward.max_length
    offline = model_reward.score([PROMPT], [RESPONSE]).item()  # pair scoring: the prompt is cut from the left
    start_kept = model_reward.score([""], [PROMPT + RESPONSE]).item()  # the old server's reading
    assert offline != pytest.approx(start_kept, abs=1e-4)
    got = get_reward(model_reward, [query], [PROMPT], [None])
    assert got["rewards"] == pytest.approx([offline], abs=1e-5)


def test_overlong_text_without_a_usable_prompt_keeps_its_end(model_reward, tokenizer):
    """No prompt, or one that is not a prefix (OpenRLHF left-truncated it): the model reads the END of the text,
    i.e. scores like offline scoring of the text's tail that fits (this tokenizer: one token per character)."""
    text = PROMPT + RESPONSE
    specials = len(model_reward.encode([""], ["a"])[0]) - len(tokenizer("a", add_special_tokens=False)["input_ids"])
    budget = model_reward.max_length - specials
    tail = text[-budget:]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer(tail, add_special_tokens=False)["input_ids"] == ids[-budget:] and len(ids) > budget
    expected = model_reward.score([""], [tail]).item()
    assert expected != pytest.approx(model_reward.score([""], [text]).item(), abs=1e-4)  # not the start
    for prompts in ([""], ["a prompt that is not where the query starts"], None):
        got = get_reward(model_reward, [text + tokenizer.eos_token], prompts)
        assert got["rewards"] == pytest.approx([expected], abs=1e-5), prompts
    with TestClient(create_app(model_reward)) as c:  # vLLM /classify: the same full-text rule
        probs = c.post("/classify", json={"input": text, "activation": False}).json()["data"][-1]["probs"]
    assert probs == pytest.approx([expected], abs=1e-5)


def test_labels_reach_a_rule_reward_and_the_response_is_split_off():
    exact = load_reward("rule:exact")  # no answers file: the label is the reference answer
    got = get_reward(exact, [PROMPT + " Paris.", PROMPT + " Paris."], [PROMPT, PROMPT], ["paris", "Rome"])
    assert got["rewards"] == [1.0, 0.0]
    missing = get_reward(exact, [PROMPT + " Paris."], [PROMPT], [""])  # "" = no label
    assert "no label" in missing["error"]["message"]

    seen = []

    def check(prompt, response, label=None):
        seen.append((prompt, response, label))
        return float(response.strip() == label)

    got = get_reward(FunctionReward(check), ["Q: 2+2? A: 4", "no prompt here 4"], ["Q: 2+2? A:", "Q: 3+3?"],
                     ["4", None])
    assert got["rewards"] == [1.0, 0.0]
    assert seen == [("Q: 2+2? A:", " 4", "4"), ("", "no prompt here 4", None)]
    # a reward without a label parameter is not given labels (and still gets the split)
    assert get_reward(FunctionReward(lambda p, r: float(len(r))), ["Q: 4"], ["Q:"], ["x"])["rewards"] == [2.0]


@pytest.mark.parametrize("family", ["llama", "mistral", "gpt2"])
def test_templated_query_of_an_imported_rm_scores_as_transformers(family, corpus, tmp_path):
    """A full chat-templated text (OpenRLHF query, vLLM input) for a hub RM = transformers on tokenizer(text) with
    the start tokens once: the template's own trailing end of turn (<|eot_id|>, </s>) stays, where the score is
    read (it was stripped and not put back); trailing pad/eos copies collapse to it."""
    import torch

    from tests.models.hf_families import save_family

    model, tok = save_family(family, corpus, tmp_path / "rm")
    reward = load_reward(str(tmp_path / "rm"), device="cpu")
    conv = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat on a mat"}]
    text = tok.apply_chat_template(conv, tokenize=False)
    prompt = tok.apply_chat_template(conv[:1], tokenize=False, add_generation_prompt=True)
    ids = tok(text)["input_ids"]
    ids = ids[1:] if tok.bos_token_id is not None and ids[:2] == [tok.bos_token_id] * 2 else ids
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    padded = text + (tok.pad_token or tok.eos_token) * 2
    got = get_reward(reward, [text, padded, text], ["", "", prompt])["rewards"]
    assert got == pytest.approx([expected] * 3, abs=1e-5)
    with TestClient(create_app(reward)) as c:
        probs = c.post("/classify", json={"input": [text], "activation": False}).json()["data"][0]["probs"]
    assert probs[-1] == pytest.approx(expected, abs=1e-5)  # one label: the raw score, as verl reads it
