"""Model cards: the ``README.md`` a user (and the Hugging Face hub) reads in a model directory.

`train` writes one next to its checkpoint and `export` one next to the transformers classifier, as TRL and
OpenRLHF do: what the model is, what it was trained from and on, its metrics, and how to load it. The YAML front
matter carries ``library_name`` and ``tags`` only — never TRL's ``reward-trainer`` tag, which
:func:`rewardlab.models.formats.hf_classifier.trl_reward_trainer_version` reads as "tokenized by TRL's RewardTrainer".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rewardlab.io import write_text_atomic


def _row(key: str, value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}" if math.isfinite(value) else "n/a"
    return f"| {key} | {value} |"


def model_card(title: str, summary: str, metrics: dict[str, Any], usage: str, library: str) -> str:
    """The card's text: front matter, a one-paragraph summary, a metrics table (scalars only) and usage."""
    from rewardlab import __version__

    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    table = "\n".join(["| metric | value |", "|---|---|", *(_row(k, v) for k, v in scalars.items())])
    return (f"---\nlibrary_name: {library}\ntags:\n- reward-model\n- rewardlab\n---\n\n# {title}\n\n{summary}\n\n"
            f"## Metrics\n\n{table if scalars else 'none recorded'}\n\n## Use\n\n{usage}\n\n"
            f"Written by rewardlab {__version__}.\n")


def write_train_card(output: Path, base: str, objective: str, summary: dict[str, Any]) -> None:
    """``output/README.md`` for a trained reward model (``summary``: the run summary of ``run.json``)."""
    used = (summary.get("pairs") or {}).get("train") or {}
    text = (f"A {objective} reward model trained with `rewardlab train` from `{base}` on "
            f"{used.get('used', '?')} preference pairs (data sha256 `{summary.get('data_hash', '?')}`). Its "
            "rendering (chat template, special tokens, maximum length) is recorded in `rewardlab.json` and "
            "applied the same way wherever it is loaded.")
    usage = ("```bash\nrewardlab score THIS_DIR pairs.jsonl -o scores.jsonl   # or: rewardlab serve THIS_DIR\n"
             "rewardlab export THIS_DIR OUT --format hf                # a transformers classifier\n```\n\n"
             "```python\nfrom rewardlab.rewards.model import ModelReward\n"
             "reward = ModelReward.from_pretrained(\"THIS_DIR\")\n"
             "scores = reward.score([\"prompt\"], [\"response\"])\n```")
    metrics = summary.get("metrics") or {}
    write_text_atomic(output / "README.md", model_card("Reward model", text, metrics, usage, "rewardlab"))


def write_export_card(out: Path, source: str | Path, manifest: dict[str, Any]) -> None:
    """``out/README.md`` for an exported transformers classifier of the rewardlab model at ``source``."""
    text = (f"A reward model exported by `rewardlab export` from `{source}` (base `{manifest.get('base', '?')}`) "
            "as a transformers `*ForSequenceClassification` with one label: the logit is the reward.")
    usage = ("```python\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
             "model = AutoModelForSequenceClassification.from_pretrained(\"THIS_DIR\")\n"
             "tok = AutoTokenizer.from_pretrained(\"THIS_DIR\")\n"
             "reward = model(**tok(\"prompt and response\", return_tensors=\"pt\")).logits[0, 0]\n```\n\n"
             "Also served by vLLM (`--task classify`), OpenRLHF and `rewardlab serve THIS_DIR`. Metrics from "
             "training:\n\n```json\n" + json.dumps(manifest.get("metrics") or {}, indent=2) + "\n```")
    write_text_atomic(out / "README.md", model_card("Reward model (transformers export)", text,
                                                    manifest.get("metrics") or {}, usage, "transformers"))
