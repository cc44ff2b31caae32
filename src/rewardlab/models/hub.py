"""Hub ids as model paths: ``org/name`` or ``org/name@revision`` that is not a local path names a Hugging Face hub
model, resolved through ``huggingface_hub`` to its snapshot directory in the local HF cache.

The cache is tried first (no network: a model downloaded once, by rewardlab, transformers or ``hf download``, is
used as it is). When it is not there and the hub is reachable (``HF_HUB_OFFLINE`` unset), it is downloaded: weights
as safetensors only, configs, tokenizer files, chat templates and the model card (TRL's card says how its RMs were
tokenized) — never pickled ``*.bin``/``*.pt`` weights and never remote code. A repo with pickled weights only gets
its configs and then the usual "safetensors only" refusal. Gated or private models need ``HF_TOKEN``, as everywhere
in the ecosystem.
"""

from __future__ import annotations

import re
from pathlib import Path

from rewardlab.errors import UserError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "README.md"]


def is_hub_id(ref: str) -> bool:
    """Whether ``ref`` reads as a hub id and is not a local path (a local ``runs/rm`` always wins)."""
    return bool(HUB_ID.match(ref)) and not Path(ref).exists() and not Path(ref.partition("@")[0]).exists()


def hub_snapshot(ref: str) -> Path:
    """The local snapshot directory of hub id ``ref`` (``org/name[@revision]``), downloaded if needed (see the
    module docstring); a one-line UserError when it is neither cached nor downloadable."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, _, revision = ref.partition("@")
    revision = revision or None
    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    where = f"not a local directory and not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"{ref}: {where}, and HF_HUB_OFFLINE is set: download it where the hub is reachable "
                        f"(`hf download {repo}`) or pass a local directory") from None
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=ALLOW_PATTERNS))
    except GatedRepoError:
        raise UserError(f"{ref}: a gated model: accept its terms on huggingface.co and set HF_TOKEN") from None
    except RevisionNotFoundError:
        raise UserError(f"{ref}: the hub has no revision {revision!r} of {repo}") from None
    except RepositoryNotFoundError:
        raise UserError(f"{ref}: no such model on the hub (a private one needs HF_TOKEN), and {where}") from None
    except (HfHubHTTPError, OSError) as e:
        raise UserError(f"{ref}: {where}, and downloading it failed ({type(e).__name__}: {e})") from None


def local_model_path(ref: str) -> str:
    """``ref`` itself, or the snapshot directory when it is a hub id (:func:`is_hub_id`)."""
    return str(hub_snapshot(ref)) if is_hub_id(ref) else ref
