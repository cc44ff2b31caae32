import json

import pytest
import torch

from rewardlab.errors import UserError
from rewardlab.rewards.base import FunctionReward
from rewardlab.rewards.registry import load_reward
from rewardlab.rewards.rules import (
    Constrained,
    Gate,
    Judge,
    WeightedSum,
    exact_match,
    extract_number,
    length_penalty,
    mixture_from_config,
    numeric_match,
    regex_match,
    rule_from_spec,
)


def test_text_rules_by_hand():
    assert exact_match("  Paris. ", "paris") == 1.0 and exact_match("Paris, France", "paris") == 0.0
    assert extract_number("so 3 apples, then 1,250.5 pears") == 1250.5
    assert extract_number("#### 42\nnot 7") == 42.0  # GSM8K marker wins over the last number
    assert extract_number(r"x = \boxed{-3.5} and 9") == -3.5
    assert extract_number("no digits") is None
    assert numeric_match("the answer is 12", 12) == 1.0 and numeric_match("the answer is 13", 12) == 0.0
    assert numeric_match("1e3", "1000") == 1.0 and numeric_match("1000.01", 1000, tol=1e-4) == 1.0
    assert numeric_match("nothing", 3) == 0.0
    assert regex_match("Answer: 7", r"^Answer: \d+$") == 1.0 and regex_match("7", r"^Answer") == 0.0
    assert length_penalty("a b c", 5) == 0.0
    assert length_penalty("a b c d e f g", 5, scale=0.5) == -1.0  # 2 words over x 0.5
    assert length_penalty("a " * 20, 10) == pytest.approx(-1.0)  # default scale 1/target


def test_rule_specs_with_answer_file(tmp_path):
    f = tmp_path / "answers.jsonl"
    f.write_text(json.dumps({"prompt": "2+2?", "answer": "4"}) + "\n"
                 + json.dumps({"prompt": "capital of France?", "answer": "Paris"}) + "\n")
    num = load_reward(f"rule:numeric:{f}")
    assert num.score(["2+2?", "2+2?"], ["it is 4", "it is 5"]).tolist() == [1.0, 0.0]
    ex = load_reward(f"rule:exact:{f}")
    assert ex.score(["capital of France?"], ["paris!"]).tolist() == [1.0]
    # a full text (OpenRLHF query): the answer is looked up from the prompt inside it, checked on what follows
    assert num.score([""], ["2+2? 4"]).tolist() == [1.0]
    assert num.score([""], ["2+2? 5"]).tolist() == [0.0]
    with pytest.raises(UserError, match="no reference answer"):
        num.score(["3+3?"], ["6"])
    assert load_reward("rule:regex:^a:b").score(["p", "p"], ["a:b c", "b"]).tolist() == [1.0, 0.0]  # ':' kept
    assert load_reward("rule:length:2:0.5").score(["p"], ["a b c d"]).tolist() == [-1.0]


@pytest.mark.parametrize("spec", ["rule:nope:1", "rule:regex:(", "rule:length:x", "rule:exact:/no/such/file",
                                  "rule:regex", "rule:length"])
def test_bad_rule_specs(spec):
    with pytest.raises(UserError):
        rule_from_spec(spec)


def const(values):
    it = iter(values)
    return FunctionReward(lambda p, r: next(it))


def by_text(table):
    return FunctionReward(lambda p, r: table[r])


def test_weighted_sum():
    a, b = by_text({"x": 1.0, "y": 2.0}), by_text({"x": 10.0, "y": -1.0})
    assert WeightedSum([(a, 2.0), (b, 0.5)]).score(["p", "p"], ["x", "y"]).tolist() == [7.0, 3.5]


def test_gate_routes_and_counts():
    when = by_text({"1": 1.0, "2": 0.0, "3": 1.0})
    then, other = by_text({"1": 10.0, "3": 30.0}), by_text({"2": -2.0})  # a branch never sees the other's items
    g = Gate(when, then, other, threshold=0.5)
    assert g.score(["p"] * 3, ["1", "2", "3"]).tolist() == [10.0, -2.0, 30.0]
    g.score(["p"], ["2"])
    assert g.counts == {"items": 4, "then": 2, "else": 2}


def test_constraints_zero_rejected_items_and_count_each_judge():
    base = by_text({"a": 3.0, "d": 5.0})  # only accepted items reach the base reward
    fmt = Judge("format", by_text({"a": 1.0, "b": 0.0, "c": 0.0, "d": 1.0}))
    safe = Judge("safety", by_text({"a": 0.9, "b": 0.2, "c": 0.8, "d": 0.7}), threshold=0.75)
    c = Constrained(base, [fmt, safe], penalty=-1.0)
    assert c.score(["p"] * 4, ["a", "b", "c", "d"]).tolist() == [3.0, -1.0, -1.0, -1.0]
    s = c.stats()
    assert s["items"] == 4 and s["rejected"] == 3
    assert s["by_judge"] == {"format": 2, "safety": 2}  # b fails both, c fails format, d fails safety
    assert s["rejected_rate"] == 0.75


def test_mixture_from_config_and_spec(tmp_path):
    specs = {"A": by_text({"x": 1.0, "yy": 2.0}), "B": by_text({"x": 4.0, "yy": 8.0})}
    cfg = {"sum": [{"reward": "A", "weight": 1.0}, {"reward": "B", "weight": 0.25}],
           "constraints": [{"name": "short", "reward": "rule:length:1:1.0", "threshold": -0.5}]}

    def load(spec):
        return specs[spec] if spec in specs else load_reward(spec)

    m = mixture_from_config(cfg, load)
    assert m.score(["p", "p"], ["x", "yy"]).tolist() == [2.0, 4.0]  # length penalty 0 for 1 word → accepted
    assert m.score(["p"], ["x x"]).tolist() == [0.0]  # 2 words: penalty -1 <= -0.5, rejected
    (tmp_path / "m.yaml").write_text("sum:\n  - {reward: 'rule:regex:^ok', weight: 2}\n"
                                     "  - {reward: 'rule:length:1', weight: 1}\n")
    r = load_reward(f"mix:{tmp_path / 'm.yaml'}")
    torch.testing.assert_close(r.score(["p", "p"], ["ok", "ok go"]), torch.tensor([2.0, 1.0]))
    with pytest.raises(UserError, match="exactly one"):
        mixture_from_config({"sum": [], "reward": "A"}, load)


def test_answer_rules_prefer_the_label_and_need_one_without_a_file(tmp_path):
    f = tmp_path / "answers.jsonl"
    f.write_text(json.dumps({"prompt": "2+2?", "answer": "4"}) + "\n")
    num = load_reward(f"rule:numeric:{f}")
    assert num.uses_labels
    # the label wins over the file; None falls back to the file
    assert num.score(["2+2?", "2+2?"], ["it is 5", "it is 4"], labels=["5", None]).tolist() == [1.0, 1.0]
    # a chat-templated prompt string still finds its answer (the known prompt is inside it)
    assert num.score(["<|user|>\n2+2?\n<|assistant|>\n"], ["4"]).tolist() == [1.0]
    exact = load_reward("rule:exact")
    assert exact.score(["p", "p"], ["Paris.", "Paris"], labels=["paris", "Rome"]).tolist() == [1.0, 0.0]
    assert load_reward("rule:numeric::0.1").score(["p"], ["3.05"], labels=[3]).tolist() == [1.0]
    with pytest.raises(UserError, match="no label"):
        exact.score(["p"], ["Paris"])
    assert not load_reward("rule:length:3").uses_labels


def test_mixtures_forward_labels_and_declare_batch_invariance():
    exact = load_reward("rule:exact")
    m = WeightedSum([(exact, 2.0), (by_text({"Paris": 1.0}), 1.0)])
    assert m.uses_labels and m.batch_invariant
    assert m.score(["p", "p"], ["Paris", "Paris"], labels=["paris", "rome"]).tolist() == [3.0, 1.0]
    g = Gate(exact, by_text({"Paris": 10.0}), by_text({"Paris": -1.0}))
    assert g.score(["p", "p"], ["Paris", "Paris"], labels=["paris", "rome"]).tolist() == [10.0, -1.0]
    c = Constrained(by_text({"Paris": 5.0}), [Judge("right", exact)])
    assert c.score(["p", "p"], ["Paris", "Paris"], labels=["rome", "paris"]).tolist() == [0.0, 5.0]
    dependent = by_text({"Paris": 1.0})
    dependent.batch_invariant = False
    assert not WeightedSum([(dependent, 1.0)]).batch_invariant
    assert not Gate(exact, dependent, exact).batch_invariant
    assert not Constrained(exact, [Judge("j", dependent)]).batch_invariant
    assert not WeightedSum([(by_text({"x": 1.0}), 1.0)]).uses_labels
