"""Run the reward server with uvicorn: in the foreground (the CLI) or on a background thread (tests, benchmarks).

Graceful shutdown: on SIGINT/SIGTERM (foreground) or :meth:`ServerThread.stop`, uvicorn stops accepting
connections and waits for in-flight requests (up to ``graceful_timeout_s``), then the app's lifespan drains the
batcher. Both paths set ``uvicorn.Server.should_exit``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.security import check_bind


def _uvicorn_config(app, host: str, port: int, log_level: str, graceful_timeout_s: float):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                          timeout_graceful_shutdown=graceful_timeout_s, access_log=False, server_header=False)


def serve_forever(reward: Any, host: str = "127.0.0.1", port: int = 5000, config: ServeConfig | None = None,
                  name: str | None = None, log_level: str = "info", graceful_timeout_s: float = 60.0) -> None:
    """Serve ``reward`` until interrupted. Refuses a non-loopback ``host`` without ``config.token``."""
    import uvicorn

    config = config or ServeConfig()
    check_bind(host, config.token)
    app = create_app(reward, config, name=name)
    uvicorn.Server(_uvicorn_config(app, host, port, log_level, graceful_timeout_s)).run()


class ServerThread:
    """A uvicorn server on ``127.0.0.1`` and an ephemeral port, on a daemon thread: ``with ServerThread(r) as s:``.

    ``s.url`` is its base URL. ``stop()`` shuts down gracefully (in-flight requests finish).
    """

    def __init__(self, reward: Any, config: ServeConfig | None = None, name: str | None = None,
                 host: str = "127.0.0.1", log_level: str = "warning", graceful_timeout_s: float = 30.0):
        import uvicorn

        config = config or ServeConfig()
        check_bind(host, config.token)
        self.app = create_app(reward, config, name=name)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.server = uvicorn.Server(_uvicorn_config(self.app, host, self.port, log_level, graceful_timeout_s))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                         name="rewardlab-server")

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the reward server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
