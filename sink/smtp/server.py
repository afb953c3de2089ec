"""The SMTP protocol: aiosmtpd's ``SMTP`` with what a sink needs on top.

- DATA is read in large chunks (``data.read_data``) instead of line by line.
- Every reply carries an enhanced status code (RFC 3463); aiosmtpd's own replies
  that lack one get it added in ``push``.
- The null sender ``MAIL FROM:<>`` is accepted (bounces and DSNs use it).
- A connection cap (421 past it, existing sessions untouched), an idle timeout
  that says 421 before closing, and a graceful shutdown.
- AUTH comes from ``auth.SmtpAuth``; STARTTLS twice is refused, and a failed TLS
  handshake closes that connection quietly (no traceback).
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Callable, Optional

from aiosmtpd.smtp import SMTP, TLSSetupException, syntax

from . import chaos as chaos_module
from .auth import Authenticator, SmtpAuth
from .data import ConnectionLostDuringData, InMemory, read_data

log = logging.getLogger(__name__)

NULL_SENDER = "<>"

# aiosmtpd replies without an enhanced status code, and the code they should carry.
_ENHANCED_BY_PREFIX: list[tuple[str, str]] = [
    ("500 Command line too long", "5.5.2"),
    ("500 Line too long", "5.5.2"),
    ("500 Error: bad syntax", "5.5.2"),
    ("500 Error: command", "5.5.1"),
    ("500 Error: strict ASCII", "5.6.7"),
    ("502", "5.5.1"),
    ("503", "5.5.1"),
    ("501", "5.5.4"),
    ("552", "5.3.4"),
    ("555", "5.5.4"),
    ("530", "5.7.0"),
    ("535", "5.7.8"),
    ("554", "5.7.0"),
    ("454", "4.7.0"),
    ("220 Ready to start TLS", "2.0.0"),
    ("221", "2.0.0"),
    ("235", "2.7.0"),
    ("252", "2.5.0"),
]
_HAS_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")
_SIZE_EXCEEDED = "552 Error: message size exceeds fixed maximum message size"
# "<local@domain> params": the common, simple form of a MAIL/RCPT address.
_SIMPLE_ANGLE_ADDR = re.compile(r'\s*<([^\s<>()\[\]\\,;:@"]+@[^\s<>()\[\]\\,;:@"]+)>(.*)\Z')


def with_enhanced_code(reply: str) -> str:
    """Insert the enhanced status code aiosmtpd left out (none for 2xx/3xx we don't know)."""
    if len(reply) < 4 or _HAS_ENHANCED.match(reply) or reply[3] == "-":
        return reply
    if reply == _SIZE_EXCEEDED:
        return "552 5.3.4 Message size exceeds fixed maximum message size"
    for prefix, code in _ENHANCED_BY_PREFIX:
        if reply.startswith(prefix):
            return f"{reply[:3]} {code} {reply[4:]}"
    if reply[0] in "45":
        return f"{reply[:3]} {reply[0]}.0.0 {reply[4:]}"
    return reply


class ConnectionTracker:
    """Counts a server's open sessions so it can cap them and drain them at shutdown."""

    def __init__(self, limit: int):
        self.limit = limit
        self.sessions: set["SinkSMTP"] = set()
        # Each session's command loop; shutdown waits for them so that no task is
        # left pending on a loop that is about to close.
        self.tasks: set[asyncio.Task] = set()
        self.shutting_down = False

    def has_room(self) -> bool:
        return len(self.sessions) < self.limit and not self.shutting_down

    async def drain(self, grace: float) -> None:
        """Refuse new commands with 421 and give transactions in DATA ``grace`` seconds."""
        self.shutting_down = True
        for session in list(self.sessions):
            session.refuse_if_idle()
        deadline = asyncio.get_running_loop().time() + grace
        while any(s.busy for s in self.sessions) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for session in list(self.sessions):
            session.close_with_421()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class SinkSMTP(SmtpAuth, SMTP):
    """One SMTP session of the sink."""

    def __init__(self, handler: Any, *, tracker: ConnectionTracker,
                 auth: Authenticator | None = None, auth_on_plaintext: bool = False,
                 new_content: Callable[[], Any] = InMemory,
                 chaos: "chaos_module.Chaos | None" = None, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.tracker = tracker
        # Makes the buffer a DATA body is read into: the store's spool in the sink.
        self.new_content = new_content
        self.auth = auth
        self.auth_on_plaintext = auth_on_plaintext
        self.chaos = chaos  # Jim and fault rules, shared by the server's sessions
        self.chaos_session: chaos_module.SessionChaos | None = None
        self._greeted = False
        self._refused = False
        self.busy = False  # True from DATA's 354 until its reply is sent
        self._parsing_mail_from = False

    # -- connection lifecycle ------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and not self.tracker.has_room():
            # Over the cap: say so and hang up without starting a session.
            self._refused = True
            transport.write(f"421 4.7.0 {self.hostname} Too many connections, try again later\r\n"
                            .encode())  # type: ignore[attr-defined]
            transport.close()
            return
        if self.transport is None and self.chaos is not None and self.chaos.active:
            self.chaos_session = self.chaos.accept_connection()
            if self.chaos_session is None:  # Jim turns this one away: closed, no banner
                self._refused = True
                transport.close()
                return
        starting = self.transport is None
        self.tracker.sessions.add(self)
        super().connection_made(transport)
        if starting and self._handler_coroutine is not None:
            self.tracker.tasks.add(self._handler_coroutine)
            self._handler_coroutine.add_done_callback(self.tracker.tasks.discard)

    def connection_lost(self, error: Optional[Exception]) -> None:
        if self._refused:
            return
        self.tracker.sessions.discard(self)
        super().connection_lost(error)

    def eof_received(self) -> Optional[bool]:
        if self._refused:
            return False
        return super().eof_received()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"421 4.4.2 {self.hostname} Error: timeout exceeded\r\n".encode())
        super()._timeout_cb()

    def refuse_if_idle(self) -> None:
        if not self.busy:
            self.close_with_421()

    def close_with_421(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"421 4.3.2 {self.hostname} Service shutting down\r\n".encode())
            self.transport.close()

    @property
    def tls_active(self) -> bool:
        """True once the connection is encrypted (after STARTTLS, or from the start on SMTPS)."""
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is not None

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A client that cannot finish the handshake: aiosmtpd closes the connection;
            # one log line instead of a traceback.
            log.info("%r TLS handshake failed: %s", self.session.peer, error.__cause__ or error)
            return "454 4.7.0 TLS handshake failed"
        return await super().handle_exception(error)

    # -- replies -------------------------------------------------------
    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = with_enhanced_code(status)
        if self.chaos is not None and self.chaos.active:
            if not self._greeted:
                await asyncio.sleep(self.chaos.delay_for("connect"))
            await chaos_module.throttle(self.chaos_session, len(status))
        self._greeted = True
        await super().push(status)

    async def _authenticate(self, args: list[str]) -> None:
        # AUTH does not go through a handler hook (SmtpAuth): Jim gets his say here.
        if self.chaos is not None and self.chaos.active:
            refusal = await chaos_module.before_reply(self.chaos, self, "AUTH", tuple(args))
            if refusal is not None:
                await self.push(refusal)
                return
        await super()._authenticate(args)

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if self.chaos is not None and self.chaos.active:
            reply = await chaos_module.before_reply(self.chaos, self, command, args)
            if reply is not None:
                return reply
        return await super()._call_handler_hook(command, *args)

    # -- commands ------------------------------------------------------
    def _getaddr(self, arg: str) -> tuple[Optional[str], Optional[str]]:
        if self._parsing_mail_from and arg.lstrip().startswith("<>"):
            return NULL_SENDER, arg.lstrip()[2:]
        # aiosmtpd's full RFC 5322 parse is a sixth of the CPU per message; a plain
        # <user@domain> needs none of it. Anything unusual still goes through it.
        simple = _SIMPLE_ANGLE_ADDR.match(arg)
        if simple:
            return simple.group(1), simple.group(2)
        return super()._getaddr(arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: Optional[str]) -> None:
        self._parsing_mail_from = True
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._parsing_mail_from = False

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls_active:
            await self.push("503 5.5.1 Error: TLS already active")
            return
        await super().smtp_STARTTLS(arg)
        if self._tls_protocol is not None and not self.tls_active:
            # The connection closed mid-handshake (idle timeout, client gone): asyncio then
            # ends the handshake wait without an error and never tells this session its
            # connection is lost, which would leak the session and its connection slot.
            raise TLSSetupException("connection closed during the TLS handshake")

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        if self.tracker.shutting_down:
            await self.push("421 4.3.2 Service shutting down")
            return
        self.busy = True
        content = self.new_content()
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                result = await read_data(self._reader, self.data_size_limit,
                                         on_progress=self._reset_timeout, into=content)
            except ConnectionLostDuringData:
                log.info("%r connection lost during DATA; nothing stored", self.session.peer)
                self._writer.close()
                return
            if result.leftover:
                # Pipelined commands after the final dot go back to the command reader.
                self._reader._buffer[0:0] = result.leftover  # type: ignore[attr-defined]
            if result.content is None:
                self._set_post_data_state()
                if result.storage_error is not None:
                    log.error("%r could not spool a message: %s", self.session.peer,
                              result.storage_error)
                    await self.push("452 4.3.1 Insufficient system storage, try again later")
                else:
                    await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
                return
            self.envelope.original_content = result.content
            self.envelope.content = result.content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)
        finally:
            # Whatever the handler did not hand to the store (a rejection, an error)
            # is dropped here, spool file included.
            try:
                content.discard()
            except OSError as error:
                log.warning("could not drop a spooled message: %s", error)
            self.busy = False
        if self.tracker.shutting_down:
            self.close_with_421()
