"""How our HTTP servers run under uvicorn: a connection that sends no complete request within the read
timeout is closed, idle keep-alive connections close after a few seconds, connections are bounded, and a
shutdown (SIGTERM, Ctrl-C, ``stop()``) waits at most a few seconds for requests in flight."""

from __future__ import annotations

import socket
from typing import Any

READ_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 5
GRACEFUL_SHUTDOWN_S = 3
MAX_CONNECTIONS = 64


def _timed_protocol(read_timeout_s: float):
    """uvicorn's h11 protocol, closing a connection whose request headers have not arrived in time."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._read_deadline = self.loop.call_later(read_timeout_s, self._drop_if_stalled)

        def _drop_if_stalled(self) -> None:
            if getattr(self, "cycle", None) is None and not self.transport.is_closing():
                self.transport.close()  # connected, but no complete request line and headers: slowloris

        def connection_lost(self, exc: Exception | None) -> None:
            self._read_deadline.cancel()
            super().connection_lost(exc)

    return TimedH11Protocol


def server_config(app, host: str, port: int, read_timeout_s: float = READ_TIMEOUT_S, **extra: Any):
    """A ``uvicorn.Config`` with the timeouts and bounds above (quiet logs, no lifespan)."""
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "http": _timed_protocol(read_timeout_s),
        "timeout_keep_alive": KEEP_ALIVE_S,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "limit_concurrency": MAX_CONNECTIONS,
    }
    return uvicorn.Config(app, **(options | extra))


def display_url(host: str, port: int) -> str:
    """The URL to print for a server on ``host``: an unspecified address (0.0.0.0, ::) is shown as this
    machine's name, which clients can reach and the Host check accepts."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname() or "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_server(app, host: str, port: int, read_timeout_s: float = READ_TIMEOUT_S) -> None:
    """Serve ``app`` in the foreground until SIGTERM / Ctrl-C (then a bounded graceful shutdown)."""
    import uvicorn

    uvicorn.Server(server_config(app, host, port, read_timeout_s)).run()
