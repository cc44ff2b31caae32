"""Wire protocols of the reward server: request/response models for OpenRLHF, vLLM-compatible and native endpoints.

Protocol facts, checked against the clients' and servers' source code (read on 2026-11-23):

**OpenRLHF remote reward model** (OpenRLHF/OpenRLHF @ 3c3be6234e0cb353e76bb8019947db9dfe99fca7)
- Client: ``openrlhf/utils/agent.py`` ``SingleTurnAgentExecutor._fetch_rewards_via_http`` (the older
  ``openrlhf/utils/remote_rm_utils.py`` ``request_api_wrapper``, last at 62987083^, is gone). It POSTs JSON
  ``{"query": [str], "prompts": [str], "labels": [label]}`` to the configured URL (``--reward.remote_url
  http://host:5000/get_reward``), with aiohttp ``ClientTimeout(total=180)``, 5 tries, 1 s sleep between tries; it
  retries on *any* error, 4xx included (``raise_for_status``). It reads the body with aiohttp ``response.json()``,
  which requires ``Content-Type: application/json``.
- The client sends one sample per call: ``query`` is ``hf_tokenizer.decode(prompt_ids + action_ids,
  skip_special_tokens=False)`` -- the full prompt+response text with special tokens kept (the prompt already went
  through the policy's chat template, and the response ends with eos when generation stopped on it). ``prompts`` is
  the raw prompt string, ``labels`` the dataset label (may be ``None``). With several URLs the list is sharded
  ``ceil(n / num_servers)`` per server, so trailing servers can get ``{"query": [], "prompts": [], "labels": []}``.
- It uses ``rewards_info["rewards"]`` as the reward, ``scores`` (falls back to ``rewards`` when missing/null) for
  dynamic filtering, and ``extra_logs`` (a dict of numeric lists; later turned into tensors).
- Server: ``openrlhf/cli/serve_rm.py``: ``POST /get_reward`` reads ``data["query"]``, tokenizes with
  ``add_special_tokens=False``, ``padding=True``, ``truncation=True``, ``max_length=--data.max_len`` (default 2048;
  tokenizer created with padding side "left", truncation side default = right) and answers
  ``{"rewards": r, "scores": r, "extra_logs": {"dummy_scores": r}}``. Until commit 494850f5 (2025-05-29) the server
  stripped leading/trailing runs of pad/eos text (regex) and appended exactly one eos; the current server does not.
- rewardlab's choice: strip leading pad (and a leading copy of the tokenizer's own start tokens, e.g. bos) and trailing
  pad/eos ids, then encode with the model's own special-token layout (e.g. ``text <eos>``), so a query with or
  without its trailing eos scores the same. No chat template is applied to ``query``. Unlike OpenRLHF's server
  (which cuts an over-long query at its END -- the response the reward head reads), when ``prompts[i]`` is a prefix
  of ``query[i]`` the query is split there and scored as (prompt, response) with the prompt cut from the left, as
  offline pair scoring does; without a usable prompt (OpenRLHF left-truncated it, or ``""``) the text keeps its end.
  Truncations are counted in ``/metrics``. ``labels`` reach rewards that use them (``rule:exact``, ``rule:numeric``,
  a ``python:`` function with a ``label`` parameter); ``""``/``null`` mean no label.

**vLLM OpenAI-compatible pooling API** (vllm-project/vllm @ b59bccae8c4e91e2d6ecd84cf7eed4d38810e024,
``vllm/frontend/entrypoints/pooling/{base,classify,pooling,scoring}/protocol.py``; older path
``vllm/entrypoints/pooling/...``)
- ``POST /classify``: ``ClassificationCompletionRequest``: ``model: str|None``, ``input: list[int] | list[list[int]] |
  str | list[str]``, ``add_special_tokens: bool = True``, ``use_activation: bool|None = None`` (None = pooler default,
  i.e. activation on), ``truncate_prompt_tokens: int >= -1 | None``, ``truncation_side``, ``user``, ``request_id``,
  ``priority``; the chat variant has ``messages`` instead of ``input`` (``add_special_tokens`` default False). Older
  releases had ``activation``/``softmax`` (deprecated aliases of ``use_activation``); the current one rejects
  ``normalize``. Extra fields are accepted, logged and ignored (``OpenAIBaseModel`` extra="allow",
  ``vllm/entrypoints/openai/engine/protocol.py`` @ 040a2cc2a6295ea9c313d86526ff90a103eacb3e).
- Response ``ClassificationResponse``: ``{"id": "classify-<uuid>", "object": "list", "created": int, "model": str,
  "data": [{"index": int, "label": str|None, "probs": [float], "num_classes": int}], "usage": {"prompt_tokens",
  "total_tokens", "completion_tokens": 0, "prompt_tokens_details": null}}``.
- Activation (``PoolerClassify``): sigmoid when num_labels < 2, else softmax over labels; without activation the raw
  head outputs are returned.
- ``POST /pooling``: same inputs, ``data: [{"index", "object": "pooling", "data": [float]}]``.
  ``POST /score`` (cross-encoder; ``text_1``/``text_2``, or ``queries``/``documents``, or ``data_1``/``data_2``, each a
  string or a list, 1:1 or 1:N) -> ``data: [{"index", "object": "score", "score": float}]``; vLLM also mounts it at
  ``/v1/score``, which rewardlab uses for its native API, so the vLLM form is served at ``/score`` only.
- **Process reward models** (``vllm/model_executor/models/qwen2_rm.py`` ``Qwen2ForProcessRewardModel``: 2 labels,
  default pooling ``STEP``; ``vllm/model_executor/layers/pooler/tokwise/methods.py`` ``StepPool`` @
  055e47c28003156421365af985d676fc921cb075, ``StepPooler`` in older releases; ``tokwise/heads.py``
  ``TokenClassifierPoolerHead``; ``vllm/pooling_params.py``): the STEP pooler keeps the token classifier's
  output rows ``[n_tokens, num_labels]`` (columns ``returned_token_ids`` when set) at the tokens equal to
  ``step_tag_id`` (e.g. Qwen2.5-Math-PRM's ``<extra_0>``), and the head applies the activation (softmax over the
  labels) unless ``use_activation`` is false (``token_classify`` defaults it to true). So ``/pooling`` answers, per
  input, ``data`` = ``[[p_neg, p_pos], ...]``, one row per step (``PoolingResponseData.data: list[list[float]] |
  list[float] | str``). rewardlab serves a PRM the same way: one ``[1 − p_j, p_j]`` row per step (``p_j`` =
  :meth:`PRMReward.step_scores`; ``use_activation: false`` gives logits ``[0, log(p_j / (1 − p_j))]``, whose softmax
  is the same row); the steps are the response split at the PRM's separator, and a step dropped by truncation is
  ``null``. The native ``/v1/score`` with ``"steps": true`` adds ``step_rewards`` (``p_j`` per item).
- ``GET /v1/models``: ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by", "root",
  "parent", "max_model_len", "permission": []}]}``. Errors: ``{"error": {"message", "type", "param", "code"}}``
  (same file as ``OpenAIBaseModel``).

**verl reward loop** (volcengine/verl @ b178a3cd56f58b2d502255daba591e92833930a7,
``verl/experimental/reward_loop/reward_loop.py`` ``compute_score_disrm``)
- Renders ``raw_prompt + [{"role": "assistant", "content": response without eos}]`` with the RM tokenizer's chat
  template (bos stripped), POSTs ``{"model": path, "input": text, "activation": False}`` to ``/classify`` one sample
  per request, reads ``output["data"][-1]["probs"][-1]``. ``_post_request``: up to 16 tries, fails at once on 4xx,
  retries 5xx/timeouts/connection errors with backoff ``min(2**attempt, 30)`` s. Note: vLLM >= 0.11.2 ignores
  ``activation`` (it became ``use_activation``); rewardlab honours all three names so verl gets raw scores.

**TRL** (trl 1.16, ``trl/trainer/grpo_trainer.py`` ``_calculate_rewards``): a reward function is called as
``f(prompts=..., completions=..., completion_ids=..., **kwargs)`` (kwargs: the dataset's other columns,
``trainer_state``, ``log_extra``, ``log_metric``) and returns one float (or None -> NaN) per completion.
Conversational prompts are message lists and completions ``[{"role": "assistant", "content": str}]``; plain
completions are decoded with ``skip_special_tokens=True``.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class _Request(BaseModel):
    """Request models: unknown fields tolerated (as vLLM/OpenRLHF do), but no silent type coercion."""

    model_config = ConfigDict(extra="allow")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: StrictStr
    content: StrictStr


Conversation = Annotated[list[Message], Field(min_length=1)]
TextOrChat = StrictStr | Conversation


def to_plain(value: str | list[Message]) -> str | list[dict[str, str]]:
    """Pydantic messages back to the ``{"role", "content"}`` dicts the rest of rewardlab speaks."""
    return value if isinstance(value, str) else [{"role": m.role, "content": m.content} for m in value]


# ----------------------------------------------------------------------------------------------- OpenRLHF


class GetRewardRequest(_Request):
    query: list[StrictStr] = Field(description="Full prompt+response texts, special tokens kept.")
    prompts: list[Any] | None = Field(default=None, description="Prompt strings: where a query starts with its "
                                                                 "prompt, the rest is scored as the response.")
    labels: list[Any] | None = Field(default=None, description="Dataset labels, passed to rewards that use them "
                                                                "(e.g. rule:exact); ignored by a reward model.")


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


# ----------------------------------------------------------------------------------------------- vLLM


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int | None = 0
    prompt_tokens_details: dict | None = None


TokenIds = Annotated[list[StrictInt], Field(min_length=1)]
ClassifyInput = StrictStr | list[StrictStr] | TokenIds | list[TokenIds]


class ClassifyRequest(_Request):
    model: StrictStr | None = None
    input: ClassifyInput | None = None
    messages: Conversation | None = None
    add_special_tokens: StrictBool | None = None
    use_activation: StrictBool | None = None
    activation: StrictBool | None = Field(default=None, description="Deprecated vLLM alias of use_activation.")
    softmax: StrictBool | None = Field(default=None, description="Deprecated vLLM alias of use_activation.")
    truncate_prompt_tokens: Annotated[StrictInt, Field(ge=-1)] | None = None
    user: StrictStr | None = None

    def activation_on(self) -> bool:
        for v in (self.use_activation, self.activation, self.softmax):
            if v is not None:
                return v
        return True


class ClassificationData(BaseModel):
    index: int
    label: str | None
    probs: list[float]
    num_classes: int


class ClassifyResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"classify-{uuid.uuid4().hex}")
    object: str = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[ClassificationData]
    usage: UsageInfo


class PoolingData(BaseModel):
    index: int
    object: str = "pooling"
    data: list[float | None] | list[list[float | None]] = Field(description="One vector per input; a process "
                                                                            "reward model: one row per step.")


class PoolingResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"pool-{uuid.uuid4().hex}")
    object: str = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[PoolingData]
    usage: UsageInfo


class VllmScoreRequest(_Request):
    """vLLM ``/score``: pairs (text_1[i], text_2[i]) or one text_1 against every text_2 -> (prompt, response)."""

    model: StrictStr | None = None
    text_1: StrictStr | list[StrictStr] | None = None
    text_2: StrictStr | list[StrictStr] | None = None
    queries: StrictStr | list[StrictStr] | None = None
    documents: StrictStr | list[StrictStr] | None = None
    data_1: StrictStr | list[StrictStr] | None = None
    data_2: StrictStr | list[StrictStr] | None = None
    use_activation: StrictBool | None = None


class VllmScoreData(BaseModel):
    index: int
    object: str = "score"
    score: float


class VllmScoreResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"score-{uuid.uuid4().hex}")
    object: str = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[VllmScoreData]
    usage: UsageInfo


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "rewardlab"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None
    permission: list = Field(default_factory=list)


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


# ----------------------------------------------------------------------------------------------- native


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: TextOrChat = ""
    response: TextOrChat


class ScoreRequest(_Request):
    items: list[ScoreItem]
    normalize: StrictBool = Field(default=False, description="Also return scores standardized with manifest stats.")
    members: StrictBool | None = Field(default=None, description="Also return every output/member score per item "
                                       "(default: yes for a reward with members, an ensemble; no otherwise).")
    steps: StrictBool = Field(default=False, description="Also return per-step rewards (a process reward model).")


class ScoreResponse(BaseModel):
    model: str
    scores: list[float | None]
    normalized: list[float | None] | None = None
    members: list[list[float | None]] | None = None
    member_names: list[str] | None = Field(default=None, description="The members' names, one per column of "
                                           "'members' (a reward with members).")
    step_rewards: list[list[float | None]] | None = Field(default=None, description="Per item, the reward of each "
                                                          "step (null: dropped by truncation); with 'steps'.")


class CompareItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: TextOrChat = ""
    a: TextOrChat
    b: TextOrChat


class CompareRequest(_Request):
    items: list[CompareItem]


class CompareResponse(BaseModel):
    model: str
    prob_a: list[float | None] = Field(description="P(a preferred over b) = sigmoid(r_a - r_b).")
    reward_a: list[float | None]
    reward_b: list[float | None]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


class Health(BaseModel):
    status: Literal["ok", "draining"]
    model: str
    num_outputs: int
    queue: int
    batch_invariant: bool = Field(default=True, description="False: each request is scored alone (its scores "
                                                             "depend on the other items of the request).")

