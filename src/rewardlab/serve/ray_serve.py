"""The reward server on Ray Serve: ``rewardlab serve SPEC --engine ray --replicas N [--num-gpus-per-replica G]``.

Each replica is the standard app of :func:`rewardlab.serve.app.create_app` -- the same endpoints (OpenRLHF
``/get_reward``, vLLM ``/classify`` ``/pooling`` ``/score``, native ``/v1/*``), the same :class:`~rewardlab.serve.
security.Guard` (bearer token, body size and body deadline), the same item limits and its own dynamic batcher --
mounted with ``serve.ingress()`` and ``__serve_build_asgi_app__``, so it is built in the replica after the reward is
loaded there, once per replica (``load()`` runs in the replica; the driver never loads the model). Ray Serve's proxy
takes the HTTP connections and spreads requests over the replicas; the app's lifespan (batcher start, drain on
shutdown) runs in each replica.

What maps where (:class:`~rewardlab.serve.app.ServeConfig`):

- ``token``, ``max_body_bytes``, ``body_timeout_s``, ``max_items``, ``max_item_tokens``/``bytes``, batching and
  ``max_queue_tokens`` (503 + Retry-After): in the app, unchanged, per replica.
- ``limit_concurrency``: Ray Serve's ``max_ongoing_requests`` per replica and as many ``max_queued_requests``
  waiting for one; more get 503 from Ray.
- ``timeout_keep_alive_s``: the proxy's ``keep_alive_timeout_s`` (whole seconds, rounded up).
- ``header_timeout_s`` and ``max_header_bytes`` are uvicorn protocol settings of :mod:`rewardlab.serve.server`;
  Ray's proxy runs its own uvicorn and does not take them (its defaults apply).
- A non-loopback ``host`` without a token is refused before Ray starts (:func:`~rewardlab.serve.security.
  check_bind`). ``/health`` and ``/metrics`` answer for the replica that got the request.

A UserError of ``load()`` in a replica (``--normalize`` without stats, a bad spec) fails the deployment; Ray only
reports it as text, so the replica marks it (:func:`rewardlab.rewards.ray_engine.remote_user_error`) and the driver
raises it again (exit 2). ``ray.init()`` joins ``$RAY_ADDRESS`` or starts a local cluster; Serve's HTTP options
(host, port) apply only when Serve is not already running on that cluster.
"""

from __future__ import annotations

import math
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from rewardlab.errors import UserError
from rewardlab.rewards.ray_engine import ray_session, remote_user_error, user_error_from
from rewardlab.serve.app import ServeConfig
from rewardlab.serve.security import check_bind

APP = "rewardlab"
LOG_LEVELS = {"trace": "DEBUG", "debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR",
              "critical": "CRITICAL"}


class RewardReplica:
    """One replica: ``load()`` (run here, once) gives the reward; ``__serve_build_asgi_app__`` serves it."""

    def __init__(self, load: Callable[[], Any], config: ServeConfig, name: str | None):
        try:
            self.reward = load()
        except UserError as e:
            raise remote_user_error(e) from None
        self.config, self.name = config, name

    def __serve_build_asgi_app__(self):
        from rewardlab.serve.app import create_app

        return create_app(self.reward, self.config, name=self.name)


def deploy(load: Callable[[], Any], config: ServeConfig, *, name: str | None = None, replicas: int = 1,
           num_gpus_per_replica: float = 0.0, host: str = "127.0.0.1", port: int = 5000,
           log_level: str = "warning") -> str:
    """Start Serve on ``host:port`` (in the connected Ray session) and run ``replicas`` replicas; returns the URL."""
    from ray import serve

    check_bind(host, config.token)
    if replicas < 1 or num_gpus_per_replica < 0:
        raise UserError(f"--replicas must be >= 1 (got {replicas}) and --num-gpus-per-replica >= 0 (got "
                        f"{num_gpus_per_replica})")
    logging_config = {"log_level": LOG_LEVELS.get(log_level, "INFO"), "enable_access_log": False}
    serve.start(http_options={"host": host, "port": port,
                              "keep_alive_timeout_s": max(1, math.ceil(config.timeout_keep_alive_s))},
                logging_config=logging_config)
    limit = config.limit_concurrency or 1 << 20
    deployment = serve.deployment(
        serve.ingress()(RewardReplica), name="reward", num_replicas=replicas,
        ray_actor_options={"num_cpus": 1, "num_gpus": num_gpus_per_replica}, max_ongoing_requests=limit,
        max_queued_requests=limit, max_constructor_retry_count=1)
    try:
        serve.run(deployment.bind(load, config, name), name=APP, route_prefix="/", logging_config=logging_config)
    except RuntimeError as e:
        status = serve.status().applications.get(APP)
        messages = [d.message for d in status.deployments.values()] if status is not None else []
        err = user_error_from(str(e), *messages)
        if err is None:
            raise
        serve.delete(APP)
        raise err from None
    return f"http://{host}:{port}"


def serve_on_ray(load: Callable[[], Any], *, host: str, port: int, config: ServeConfig, name: str | None = None,
                 replicas: int = 1, num_gpus_per_replica: float = 0.0, log_level: str = "info") -> None:
    """The CLI's ``--engine ray``: deploy, then serve until SIGINT/SIGTERM; the app is deleted gracefully (each
    replica drains its batcher)."""
    check_bind(host, config.token)  # before starting Ray
    with ray_session(logging_level=LOG_LEVELS.get(log_level, "INFO")):
        from ray import serve

        # ray.init() installs sys.exit(15) as the SIGTERM handler: replace it before deploying, so a SIGTERM at any
        # point (also while the replicas start) deletes the app and exits 0
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            url = deploy(load, config, name=name, replicas=replicas, num_gpus_per_replica=num_gpus_per_replica,
                         host=host, port=port, log_level=log_level)
            print(f"rewardlab serve: {replicas} Ray Serve replicas at {url}", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            serve.delete(APP)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RayServer:
    """Ray Serve replicas of a reward in the current Ray session, for tests and benchmarks: ``with RayServer(load,
    replicas=2) as s: s.url``. ``stop()`` shuts Serve down (so the next one may take another port)."""

    def __init__(self, load: Callable[[], Any], config: ServeConfig | None = None, name: str | None = None,
                 replicas: int = 1, num_gpus_per_replica: float = 0.0, host: str = "127.0.0.1"):
        self.load, self.config, self.name = load, config or ServeConfig(), name
        self.replicas, self.num_gpus_per_replica, self.host = replicas, num_gpus_per_replica, host
        check_bind(host, self.config.token)
        self.url: str | None = None

    def start(self) -> RayServer:
        try:
            self.url = deploy(self.load, self.config, name=self.name, replicas=self.replicas,
                              num_gpus_per_replica=self.num_gpus_per_replica, host=self.host,
                              port=free_port(self.host))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        from ray import serve

        serve.shutdown()

    def __enter__(self) -> RayServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
