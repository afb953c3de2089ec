"""Builds and runs the sink: store, SMTP listener and HTTP app on one event loop."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn

from .events import EventBus
from .settings import Settings
from .release import Releaser, ReleaseError
from .smtp.chaos import Chaos
from .smtp.auth import Authenticator
from .smtp.handler import SinkHandler
from .smtp.server import ConnectionTracker, SinkSMTP
from .smtp.tls import TLSSetup, write_ca
from .store import Store, open_store
from .web import create_app

log = logging.getLogger("mailsink")

SHUTDOWN_GRACE = 10.0  # seconds a message in DATA may take to finish at shutdown
TLS_HANDSHAKE_TIMEOUT = 30.0  # seconds an SMTPS client gets to finish its handshake


class StartupError(RuntimeError):
    """The sink could not start (port in use, unusable db path...); one clear line."""


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    """A listening TCP socket, with a readable error when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # whose proto says TCP, and accepted sockets inherit it. With Nagle on, every
    # multi-line reply (EHLO) waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        reason = "address already in use" if error.errno == 98 else error.strerror or str(error)
        raise StartupError(f"cannot listen for {what} on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


class SinkServer:
    """One running sink. ``await start()``, then ``await stop()``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.events = EventBus()
        self.store: Store = open_store(
            settings.db, settings.max_messages,
            on_pruned=lambda ids: self.events.publish("deleted", ids=ids))
        self.tracker = ConnectionTracker(settings.max_connections)
        self.handler = SinkHandler(self.store, self.events, settings.max_recipients)
        self.chaos = Chaos.from_settings(settings)  # Jim and fault rules, changeable at run time
        self.release: Releaser | None = None  # set up in start(): reads the servers file
        # Both raise SettingsError for contradictory flags or unusable files.
        self.tls = TLSSetup.from_settings(settings)
        self.authenticator = Authenticator.from_settings(settings)
        self.smtp_port = 0
        self.smtps_port: int | None = None  # the implicit-TLS port, once listening
        self._smtps_server: asyncio.base_events.Server | None = None
        self.http_port = 0
        self._smtp_server: asyncio.base_events.Server | None = None
        self._http_server: uvicorn.Server | None = None
        self._http_task: asyncio.Task | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def smtp_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every ``SinkSMTP`` session."""
        s = self.settings
        starttls = self.tls.context if self.tls and not s.no_starttls else None
        return dict(hostname=s.hostname, ident="mailsink ESMTP", data_size_limit=s.max_size,
                    enable_SMTPUTF8=True, timeout=s.idle_timeout, tracker=self.tracker,
                    tls_context=starttls, require_starttls=s.require_tls,
                    auth=self.authenticator, auth_on_plaintext=s.auth_allow_insecure,
                    auth_required=s.require_auth, new_content=self.store.new_spool,
                    chaos=self.chaos)

    async def start(self) -> None:
        s = self.settings
        try:
            self.release = Releaser.from_settings(self.store, s)
        except ReleaseError as error:
            raise StartupError(error.message) from None
        smtp_sock = bind_socket(s.listen, s.smtp_port, "SMTP")
        try:
            http_sock = bind_socket(s.listen, s.http_port, "HTTP")
        except StartupError:
            smtp_sock.close()
            raise
        smtps_sock = None
        try:
            if s.smtps_port is not None:
                smtps_sock = bind_socket(s.listen, s.smtps_port, "SMTPS")
            if s.ca_out and self.tls and self.tls.ca_pem:
                try:
                    write_ca(s.ca_out, self.tls.ca_pem)
                except OSError as error:
                    raise StartupError(f"--ca-out: cannot write {s.ca_out}: "
                                       f"{error.strerror or error}") from None
            await self.store.open()
        except (OSError, StartupError) as error:
            for sock in (smtp_sock, http_sock, smtps_sock):
                if sock is not None:
                    sock.close()
            if isinstance(error, StartupError):
                raise
            raise StartupError(str(error)) from None
        loop = asyncio.get_running_loop()
        kwargs = self.smtp_kwargs()
        self._smtp_server = await loop.create_server(
            lambda: SinkSMTP(self.handler, loop=loop, **kwargs), sock=smtp_sock, backlog=1024)
        self.smtp_port = smtp_sock.getsockname()[1]
        if smtps_sock is not None:
            assert self.tls is not None
            # On this port TLS comes first, so the session offers neither STARTTLS nor
            # requires it; a failed handshake never reaches a session (asyncio drops it).
            smtps_kwargs = dict(kwargs, tls_context=None, require_starttls=False)
            self._smtps_server = await loop.create_server(
                lambda: SinkSMTP(self.handler, loop=loop, **smtps_kwargs), sock=smtps_sock,
                backlog=1024, ssl=self.tls.context,
                ssl_handshake_timeout=min(TLS_HANDSHAKE_TIMEOUT, s.idle_timeout))
            self.smtps_port = smtps_sock.getsockname()[1]

        try:
            app = create_app(s, self.store, self.events, lambda: self._ready,
                             ca_pem=self.tls.ca_pem if self.tls else None,
                             chaos=self.chaos, release=self.release)
        except ValueError as error:  # e.g. an unusable --ui-auth-file
            self._smtp_server.close()
            if self._smtps_server is not None:
                self._smtps_server.close()
            http_sock.close()
            await self.store.close()
            raise StartupError(str(error)) from None
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=2)
        config.load()
        self._http_server = uvicorn.Server(config)
        # What uvicorn's serve() does before startup(), without its signal handling:
        # signals belong to the CLI (or to the test process that embeds a Sink).
        self._http_server.lifespan = config.lifespan_class(config)
        await self._http_server.startup(sockets=[http_sock])
        self.http_port = http_sock.getsockname()[1]
        self._http_task = asyncio.create_task(self._http_server.main_loop())
        self._ready = True

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, let messages in DATA finish (or 421), commit, close."""
        self._ready = False
        if self._smtps_server is not None:
            self._smtps_server.close()
        if self._smtp_server is not None:
            self._smtp_server.close()
            await self.tracker.drain(grace)
        self.events.close()  # ends live event streams so HTTP can shut down
        if self._http_server is not None:
            self._http_server.should_exit = True
            if self._http_task is not None:
                # main_loop only ticks (date header) every 0.1 s: no need to wait for a tick.
                self._http_task.cancel()
                await asyncio.gather(self._http_task, return_exceptions=True)
            await self._stop_http(self._http_server)
        await self.store.close()

    @staticmethod
    async def _stop_http(server: uvicorn.Server) -> None:
        """uvicorn's graceful shutdown when connections are open, else just close.

        uvicorn's ``shutdown`` always sleeps 0.1 s for open connections to notice;
        with none open that sleep is pure cost (it dominated a test's ``Sink`` stop).
        """
        if server.server_state.connections:
            await server.shutdown()
            return
        for listener in server.servers:
            listener.close()
        for listener in server.servers:
            await listener.wait_closed()
