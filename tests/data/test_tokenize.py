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


def test_implicit_prompt_conversation_gets_no_empty_user_turn(tokenizer):
    response = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    p, r, templated = render(tokenizer, "", response)
    assert templated and p == "" and r == "<|user|> hi\n<|assistant|> hello\n"


def test_full_text_keeps_its_end_and_splits_at_the_prompt(tokenizer):
    enc = PairEncoder(tokenizer, max_length=8)
    text = "one two three four five six seven eight nine ten yes"
    ids = enc.encode_text(text)
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 8 and ids[-1] == tokenizer.eos_token_id and ids[:-1] == full[-7:]  # the end is kept
    assert enc.stats.response_truncated == 1
    # with the prompt given: the prompt is cut from the left, the response intact
    prompt = "one two three four five six seven eight nine ten"
    ids = enc.encode_text(prompt + " yes", prompt=prompt)
    r_ids = tokenizer(" yes", add_special_tokens=False)["input_ids"]
    assert ids[-1 - len(r_ids) : -1] == r_ids and enc.stats.prompt_truncated == 1
    # a text that already ends with eos does not get a second one
    assert enc.encode_text("yes no<eos>") == enc.encode_text("yes no")


def test_rendering_round_trips_through_the_manifest(tokenizer):
    from rewardlab.data.tokenize import Rendering

    r = Rendering.for_tokenizer(tokenizer, decoder=True, chat_template="{{ messages }}")
    assert Rendering.from_dict(r.to_dict()) == r
    assert r.single == ([], [tokenizer.eos_token_id]) and r.append_eos is None  # the layout already ends with eos
