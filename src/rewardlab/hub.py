"""Hub ids as paths: ``org/name`` or ``org/name@revision`` that is not a local path names a Hugging Face hub model
(or dataset, where data is read), resolved through ``huggingface_hub`` to its snapshot directory in the HF cache.

The cache is tried first (no network: a model downloaded once, by rewardlab, transformers or ``hf download``, is
used as it is). When it is not there and the hub is reachable (``HF_HUB_OFFLINE`` unset), it is downloaded: weights
as safetensors only, configs, tokenizer files, chat templates and the model card (TRL's card says how its RMs were
tokenized) — never pickled ``*.bin``/``*.pt`` weights and never remote code. A repo with pickled weights only gets
its configs and then the usual "safetensors only" refusal. Datasets bring their data files (Parquet, JSON lines,
JSON, Arrow) and their card (its ``configs`` name the splits). Gated or private repos need ``HF_TOKEN``, as
everywhere in the ecosystem.
"""

from __future__ import annotations

import re
from pathlib import Path

from rewardlab.errors import UserError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")
ALLOW_PATTERNS = {"model": ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "README.md"],
                  "dataset": ["*.parquet", "*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz", "*.arrow", "README.md"]}
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".gz", ".arrow", ".csv")  # "data/train.jsonl" is a file, never an id


def is_hub_id(ref: str) -> bool:
    """Whether ``ref`` reads as a hub id and is not a local path (a local ``runs/rm`` always wins)."""
    return bool(HUB_ID.match(ref)) and not Path(ref).exists() and not Path(ref.partition("@")[0]).exists()


def is_hub_dataset_id(ref: str) -> bool:
    """A hub id that does not end like a data file (a missing ``data/train.jsonl`` stays "no such file")."""
    return is_hub_id(ref) and not ref.lower().endswith(DATA_SUFFIXES)


def hub_snapshot(ref: str, repo_type: str = "model") -> Path:
    """The local snapshot directory of hub id ``ref`` (``org/name[@revision]``) of a ``model`` or ``dataset``
    repo, downloaded if needed (see the module docstring); a one-line UserError when it is neither cached nor
    downloadable."""
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
        return Path(snapshot_download(repo, repo_type=repo_type, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    where = f"no such local file or directory, and no {repo_type} in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if (parent := Path(repo).parent).is_dir() and str(parent) != ".":  # runs/rmm: a mistyped path, not a hub id
        import difflib

        near = difflib.get_close_matches(Path(repo).name, [p.name for p in parent.iterdir()], n=3)
        hint = f"; did you mean {', '.join(str(parent / n) for n in near)}?" if near else ""
        raise UserError(f"{ref}: no such file or directory ({parent}/ exists, so this is read as a local path, not "
                        f"a hub id; the HF cache has no {repo} either){hint}") from None
    if constants.HF_HUB_OFFLINE:
        command = f"hf download {repo}" + " --repo-type dataset" * (repo_type == "dataset")
        raise UserError(f"{ref}: {where}, and HF_HUB_OFFLINE is set: download it where the hub is reachable "
                        f"(`{command}`) or pass a local path") from None
    try:
        return Path(snapshot_download(repo, repo_type=repo_type, revision=revision,
                                      allow_patterns=ALLOW_PATTERNS[repo_type]))
    except GatedRepoError:
        raise UserError(f"{ref}: a gated {repo_type}: accept its terms on huggingface.co and set HF_TOKEN") from None
    except RevisionNotFoundError:
        raise UserError(f"{ref}: the hub has no revision {revision!r} of {repo}") from None
    except RepositoryNotFoundError:
        raise UserError(f"{ref}: {where}, and no such {repo_type} on the hub (a private one needs HF_TOKEN)") from None
    except (HfHubHTTPError, OSError) as e:
        raise UserError(f"{ref}: {where}, and downloading it failed ({type(e).__name__}: {e})") from None


def local_model_path(ref: str) -> str:
    """``ref`` itself, or the snapshot directory when it is a hub id (:func:`is_hub_id`)."""
    return str(hub_snapshot(ref)) if is_hub_id(ref) else ref
