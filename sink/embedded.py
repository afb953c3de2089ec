"""The embeddable ``Sink``: the same server as ``mailsink serve``, for test code.

``with Sink() as s:`` runs the server's event loop in a background thread, on free
loopback ports by default; ``async with Sink() as s:`` runs it on the caller's loop.
Caught mail is read from the store directly (not over HTTP): ``s.messages``,
``s.wait_for(...)`` and ``s.clear()`` from synchronous code, ``await s.amessages()``,
``await s.await_for(...)`` and ``await s.aclear()`` from any event loop.
"""
from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

from .app import SinkServer
from .caught import (CaughtMessage, MailNotReceived, caught_message, check_filters, matches,
                     not_received_message)
from .settings import Settings, client_host

LIST_PAGE = 1000  # messages read per store.list call when listing everything


class Sink:
    """A running sink: ``smtp_host``, ``smtp_port``, ``http_url``, and the mail it caught.

    Options are ``Settings`` fields (``Sink(max_size=1000)``); unlike ``mailsink serve``
    a ``Sink`` ignores ``MAILSINK_*`` environment variables and uses free ports.
    """

    def __init__(self, settings: Settings | None = None, **options: Any):
        base = settings or Settings(smtp_port=0, http_port=0)
        self.settings = base.replace(**options) if options else base
        self.server = SinkServer(self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Decoded messages by id; touched only on the sink's loop.
        self._decoded: dict[str, CaughtMessage] = {}

    # -- addresses -----------------------------------------------------
    @property
    def smtp_host(self) -> str:
        return client_host(self.settings.listen)

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
        host = self.smtp_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.http_port}"

    def __repr__(self) -> str:
        if not self.server.ready:
            return "<Sink (not running)>"
        return f"<Sink smtp={self.smtp_host}:{self.smtp_port} http={self.http_url}>"

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
            loop.run_until_complete(loop.shutdown_default_executor())
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
        loop = self._loop
        if loop is None or loop.is_closed():
            coroutine.close()
            raise RuntimeError("the sink is not running: use `with Sink() as s:`")
        if _running_loop() is loop:
            coroutine.close()  # waiting here would block the very loop that must answer
            raise RuntimeError("this sink runs on the current event loop: use the async "
                               "methods (await s.amessages(), s.await_for(), s.aclear())")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    async def _on_loop(self, coroutine: Any) -> Any:
        """Await a coroutine on the sink's loop from any event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coroutine.close()
            raise RuntimeError("the sink is not running")
        if _running_loop() is loop:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    def __enter__(self) -> "Sink":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- asynchronous use (caller's loop) ------------------------------
    async def __aenter__(self) -> "Sink":
        self._loop = asyncio.get_running_loop()
        await self.server.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.server.stop(grace=1.0)

    # -- caught mail (synchronous) -------------------------------------
    @property
    def messages(self) -> list[CaughtMessage]:
        """Every message the sink holds, oldest first, decoded."""
        return self.call(self._messages())

    def wait_for(self, count: int = 1, timeout: float = 5.0,
                 **filters: Any) -> list[CaughtMessage]:
        """Wait until ``count`` messages match ``filters``; return all that match.

        Filters: ``to`` and ``from_`` (alias ``from``) compare addresses exactly,
        ignoring case (``to`` checks envelope recipients, To and Cc; ``from_`` the
        envelope sender and From); ``subject``, ``text`` and ``html`` match a
        substring. Any filter also takes a compiled regex (searched) or a callable;
        ``match=lambda m: ...`` gets the whole message. Messages that arrived before
        the call count. On timeout raises ``MailNotReceived`` listing what did arrive.
        """
        __tracebackhide__ = True
        checked = check_filters(filters)
        matching, arrived = self.call(self._wait_for(count, timeout, checked))
        return _result_or_raise(count, timeout, checked, matching, arrived)

    def clear(self) -> None:
        """Delete every message (one store transaction)."""
        self.call(self._clear())

    # -- caught mail (any event loop) ----------------------------------
    async def amessages(self) -> list[CaughtMessage]:
        return await self._on_loop(self._messages())

    async def await_for(self, count: int = 1, timeout: float = 5.0,
                        **filters: Any) -> list[CaughtMessage]:
        """``wait_for`` for async code."""
        __tracebackhide__ = True
        checked = check_filters(filters)
        matching, arrived = await self._on_loop(self._wait_for(count, timeout, checked))
        return _result_or_raise(count, timeout, checked, matching, arrived)

    async def aclear(self) -> None:
        await self._on_loop(self._clear())

    # -- on the sink's loop --------------------------------------------
    async def _messages(self) -> list[CaughtMessage]:
        store = self.server.store
        limit = LIST_PAGE
        while True:
            page = await store.list(0, limit)
            if page.total <= limit:
                break
            limit = page.total + LIST_PAGE  # more arrived than one page: read them all
        ids = [summary.id for summary in reversed(page.summaries)]
        missing = [message_id for message_id in ids if message_id not in self._decoded]
        if missing:
            stored = [m for m in await asyncio.gather(*map(store.get, missing)) if m]
            # The full MIME parse is CPU work: keep it off the loop SMTP sessions share.
            decoded = await asyncio.to_thread(lambda: [caught_message(m) for m in stored])
            self._decoded.update((m.id, m) for m in decoded)
        if len(self._decoded) > len(ids):  # forget what was deleted or pruned
            keep = set(ids)
            self._decoded = {k: v for k, v in self._decoded.items() if k in keep}
        return [self._decoded[i] for i in ids if i in self._decoded]

    async def _wait_for(self, count: int, timeout: float, filters: dict[str, Any]
                        ) -> tuple[list[CaughtMessage], list[CaughtMessage]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Subscribe before the first look so a message arriving in between is not missed.
        async with self.server.events.subscribe() as events:
            while True:
                arrived = await self._messages()
                matching = [m for m in arrived if matches(m, filters)]
                remaining = deadline - loop.time()
                if len(matching) >= count or remaining <= 0:
                    return matching, arrived
                try:
                    await asyncio.wait_for(_next_new(events), remaining)
                except TimeoutError:
                    pass  # one last look, then report

    async def _clear(self) -> None:
        await self.server.store.delete_all()
        self.server.events.publish("deleted", all=True)
        self._decoded.clear()


async def _next_new(events: asyncio.Queue) -> None:
    while (await events.get()).kind != "new":
        pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _result_or_raise(count: int, timeout: float, filters: dict[str, Any],
                     matching: list[CaughtMessage],
                     arrived: list[CaughtMessage]) -> list[CaughtMessage]:
    __tracebackhide__ = True
    if len(matching) < count:
        raise MailNotReceived(not_received_message(count, timeout, filters, matching, arrived))
    return matching
