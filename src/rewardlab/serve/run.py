"""``rewardlab serve``: load a reward and serve it, in one uvicorn process or on Ray Serve replicas:
:func:`run_server`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardlab.serve.app import ServeConfig


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_server(model: str, config: ServeConfig, *, host: str = "127.0.0.1", port: int = 5000,
               name: str | None = None, device: str = "auto", dtype: str = "auto", chat_template: str | None = None,
               attn_implementation: str | None = None, normalize: bool = False, reference: str | None = None,
               log_level: str = "info", engine: str = "local", replicas: int = 1, num_gpus_per_replica: float = 0.0,
               log: Callable[[str], None] = _stderr) -> None:
    """Serve the reward spec ``model`` until interrupted: ``engine="local"``, one uvicorn process
    (:func:`rewardlab.serve.server.serve_forever`); ``"ray"``, ``replicas`` Ray Serve replicas each loading it once
    (:func:`rewardlab.serve.ray_serve.serve_on_ray`). ``chat_template``: a Jinja template file used instead of the
    tokenizer's (a bad one fails before any loading). ``normalize`` needs the manifest's normalization statistics;
    ``reference``: a data file an ensemble's members are standardized on. ``log`` gets the reward's notes and the
    address served."""
    from rewardlab.errors import UserError
    from rewardlab.models.device import read_chat_template

    if engine not in ("local", "ray") or replicas < 1 or num_gpus_per_replica < 0:
        raise UserError(f"--engine must be local or ray (got {engine!r}), --replicas >= 1 (got {replicas}), "
                        f"--num-gpus-per-replica >= 0 (got {num_gpus_per_replica})")
    template = read_chat_template(chat_template)  # a bad template file exits 2 before any loading

    def load() -> Any:  # here, or in each replica with --engine ray
        return load_served_reward(model, device=device, dtype=dtype, chat_template=template,
                                  attn_implementation=attn_implementation, normalize=normalize,
                                  reference=Path(reference) if reference else None, log=log)

    if engine == "ray":
        from rewardlab.serve.ray_serve import serve_on_ray

        serve_on_ray(load, host=host, port=port, config=config, name=name, replicas=replicas,
                     num_gpus_per_replica=num_gpus_per_replica, log_level=log_level)
        return
    from rewardlab.serve.server import serve_forever

    reward = load()
    auth = "bearer token required" if config.token else "no auth (loopback only)"
    log(f"rewardlab serve: {model} on http://{host}:{port} ({auth}); docs at /docs")
    serve_forever(reward, host=host, port=port, config=config, name=name, log_level=log_level)


def load_served_reward(model: str, *, device: str = "auto", dtype: str = "auto", chat_template: str | None = None,
                       attn_implementation: str | None = None, normalize: bool = False,
                       reference: Path | None = None, log: Callable[[str], None] = _stderr) -> Any:
    """The reward to serve (``chat_template``: the template's text): with ``normalize``, one whose manifest has
    normalization statistics (``rewardlab calibrate``); an ensemble's members standardized (on ``reference``'s
    responses, else each member's manifest statistics), its notes logged."""
    from rewardlab.errors import UserError
    from rewardlab.rewards.base import member_names
    from rewardlab.rewards.ensemble import ready_for_scoring
    from rewardlab.rewards.registry import load_reward

    reward = load_reward(model, device=device, dtype=dtype, chat_template=chat_template,
                         attn_implementation=attn_implementation)
    if normalize and not (getattr(reward, "normalization", None)
                          or (getattr(reward, "manifest", None) or {}).get("normalization")):
        raise UserError(f"{model}: --normalize needs 'normalization' stats in the model's manifest (run "
                        "`rewardlab calibrate DIR --data FILE` or `--prompts FILE --policy DIR`)"
                        + ("; an ensemble's members are standardized already, without it" if
                           member_names(reward) is not None else ""))
    for line in ready_for_scoring(reward, model, reference):
        log(line)
    return reward
