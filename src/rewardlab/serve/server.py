"""Run the reward server with uvicorn: in the foreground (the CLI) or on a background thread (tests, benchmarks).

Graceful shutdown: on SIGINT/SIGTERM (foreground) or :meth:`ServerThread.stop`, uvicorn stops accepting
connections and waits for in-flight requests (up to ``graceful_timeout_s``), then the app's lifespan drains the
batcher. Both paths set ``uvicorn.Server.should_exit``.

Connection limits (uvicorn 0.55, h11 protocol; fields of :class:`~rewardlab.serve.app.ServeConfig`):

- ``limit_concurrency``: uvicorn answers 503 to a request arriving while that many connections or tasks are open.
- ``timeout_keep_alive_s``: an idle keep-alive connection is closed after this long (uvicorn's own timer).
- ``header_timeout_s``: uvicorn has no header-read timeout -- its keep-alive timer is disarmed by the first byte
  and not armed at all on a fresh connection, so a client that connects and sends nothing, or half a header, holds
  a connection (and a ``limit_concurrency`` slot) forever (slowloris). :func:`_protocol_class` subclasses its h11
  protocol: from the moment a connection opens or a new request's first bytes arrive, the complete request head
  must be in within ``header_timeout_s``, else the server writes ``408 Request Timeout`` and closes.
- ``max_header_bytes``: h11's ``max_incomplete_event_size``: once more than this many bytes of a request head are
  buffered without its end, the request is refused (400). (A complete head that arrives in one read is parsed
  whatever its size; this bounds what a slow client can make the server buffer.)
- The body deadline (``body_timeout_s``) is enforced by :class:`~rewardlab.serve.security.Guard` (408).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.security import check_bind

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def _protocol_class(header_timeout_s: float):
    """uvicorn's ``H11Protocol`` with a deadline for each request head (see the module docstring)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineH11Protocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._rearm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._rearm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _waiting_for_head(self) -> bool:
            return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

        def _rearm(self) -> None:
            """Start the deadline when a request head is awaited (the timer runs on; bytes do not reset it)."""
            if not self._waiting_for_head():
                self._disarm()
            elif self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._on_header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _on_header_timeout(self) -> None:
            self._header_timer = None
            if self._waiting_for_head():
                self.logger.info("closing a connection whose request head did not arrive within %.3g s",
                                 header_timeout_s)
                self.transport.write(REQUEST_TIMEOUT)
                self.transport.close()

    return HeaderDeadlineH11Protocol


def _uvicorn_config(app, host: str, port: int, log_level: str, graceful_timeout_s: float, cfg: ServeConfig):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                          timeout_graceful_shutdown=graceful_timeout_s, access_log=False, server_header=False,
                          http=_protocol_class(cfg.header_timeout_s), timeout_keep_alive=cfg.timeout_keep_alive_s,
                          limit_concurrency=cfg.limit_concurrency, h11_max_incomplete_event_size=cfg.max_header_bytes)


def serve_forever(reward: Any, host: str = "127.0.0.1", port: int = 5000, config: ServeConfig | None = None,
                  name: str | None = None, log_level: str = "info", graceful_timeout_s: float = 60.0) -> None:
    """Serve ``reward`` until interrupted. Refuses a non-loopback ``host`` without ``config.token``."""
    import uvicorn

    config = config or ServeConfig()
    check_bind(host, config.token)
    app = create_app(reward, config, name=name)
    uvicorn.Server(_uvicorn_config(app, host, port, log_level, graceful_timeout_s, config)).run()


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
        self.server = uvicorn.Server(_uvicorn_config(self.app, host, self.port, log_level, graceful_timeout_s,
                                                     config))
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
