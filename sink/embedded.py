"""The embeddable ``Sink``: the same server as ``mailsink serve``, for test code.

``with Sink() as s:`` runs the server's event loop in a background thread, on free
loopback ports by default; ``async with Sink() as s:`` runs it on the caller's loop.
"""
from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

from .app import SinkServer
from .settings import Settings


class Sink:
    """A running sink: ``smtp_host``, ``smtp_port``, ``http_url``."""

    def __init__(self, settings: Settings | None = None, **options: Any):
        base = settings or Settings(smtp_port=0, http_port=0)
        self.settings = base.replace(**options) if options else base
        self.server = SinkServer(self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- addresses -----------------------------------------------------
    @property
    def smtp_host(self) -> str:
        return self.settings.listen

    @property
    def smtp_port(self) -> int:
        return self.server.smtp_port

    @property
    def smtps_port(self) -> int | None:
        """The implicit-TLS port (``Sink(smtps_port=0)`` turns it on), else None."""
        return self.server.smtps_port

    @property
    def ca_pem(self) -> bytes | None:
        """The generated CA certificate (PEM), None with ``tls_cert`` or without TLS."""
        return self.server.tls.ca_pem if self.server.tls else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client ``SSLContext`` that trusts this sink's certificate (hostname checks on)."""
        if self.server.tls is None:
            raise RuntimeError("this sink has no TLS (no_starttls without smtps_port)")
        return self.server.tls.client_context()

    @property
    def http_url(self) -> str:
        host = self.settings.listen
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.http_port}"

    # -- synchronous use (background thread) ---------------------------
    def start(self) -> "Sink":
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as error:  # handed to the caller's thread
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop(grace=1.0))
            loop.close()

        self._thread = threading.Thread(target=run, name="mailsink", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the sink's loop from another thread and return its result."""
        assert self._loop is not None, "the sink is not running in a thread"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> "Sink":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- asynchronous use (caller's loop) ------------------------------
    async def __aenter__(self) -> "Sink":
        await self.server.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.server.stop(grace=1.0)
