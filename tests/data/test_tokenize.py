from rewardlab.data.tokenize import PairEncoder, render


def test_prompt_is_cut_from_the_left_response_kept(tokenizer):
    enc = PairEncoder(tokenizer, max_length=10)
    prompt, response = "one two three four five six seven", "yes no"
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = enc.encode(prompt, response)
    assert len(ids) == 10
    assert ids[-1] == tokenizer.eos_token_id
    assert ids[-1 - len(r_ids) : -1] == r_ids  # response intact
    assert ids[: 9 - len(r_ids)] == p_ids[-(9 - len(r_ids)) :]  # prompt's tail kept
    assert enc.stats.prompt_truncated == 1 and enc.stats.response_truncated == 0


def test_overlong_response_truncated_or_dropped(tokenizer):
    long = " ".join(["answer"] * 50)
    trunc = PairEncoder(tokenizer, max_length=12)
    ids = trunc.encode("q", long)
    assert len(ids) == 12 and trunc.stats.response_truncated == 1
    drop = PairEncoder(tokenizer, max_length=12, overlong="drop")
    assert drop.encode("q", long) is None and drop.stats.dropped == 1


def test_no_truncation_when_it_fits(tokenizer):
    enc = PairEncoder(tokenizer, max_length=512)
    ids = enc.encode("the cat", "sat on the mat")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the catsat on the mat"
    assert enc.stats.as_dict() == {"items": 1, "prompt_truncated": 0, "response_truncated": 0, "dropped": 0}


def test_conversation_goes_through_chat_template(tokenizer):
    prompt = [{"role": "user", "content": "hi there"}]
    p, r, templated = render(tokenizer, prompt, "hello")
    assert templated and p == "<|user|> hi there\n<|assistant|> " and r == "hello\n"
