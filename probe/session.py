"""One SMTP client connection over asyncio streams: lines out, replies in, TLS, timings.

This layer knows the wire, not the transaction (that is ``client.py``). It keeps the
lessons of aiosmtplib's security fixes: no CR/LF/control characters in a command;
a reply line is at most 8 KiB and a reply 32 KiB; a timed-out connection is closed,
never reused (a late reply must not be paired with the next command); multi-line
replies end only on a ``NNN `` line; plaintext buffered after ``220`` to STARTTLS is
discarded before the handshake (an injection attempt, CVE-2011-0411 style).
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .errors import ConnectError, ProbeTimeout, ProtocolError, TLSError, UsageError
from .results import Reply, Timings, TLSInfo
from .transcript import Transcript

MAX_LINE = 8192
MAX_REPLY = 32768

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# How a stage is named in error messages ("Timeout waiting for the reply to MAIL FROM").
STAGE_LABELS = {
    "greeting": "the greeting", "ehlo": "EHLO", "helo": "HELO", "starttls": "STARTTLS",
    "auth": "AUTH", "mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA",
    "message": "the end of the message", "rset": "RSET", "quit": "QUIT", "noop": "NOOP",
}


@dataclass
class Timeouts:
    """Seconds allowed per stage; ``total`` (optional) caps the whole session."""

    connect: float = 10.0
    tls: float = 10.0
    command: float = 30.0     # the greeting and the reply to each command
    data: float = 120.0       # the reply after the final dot (the server may scan the message)
    total: float | None = None

    @classmethod
    def of(cls, value: "float | Timeouts | None") -> "Timeouts":
        """A ``Timeouts`` from one number of seconds (every stage) or as given."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        seconds = float(value)
        if seconds <= 0:
            raise UsageError("timeout must be greater than 0", stage="usage")
        return cls(connect=seconds, tls=seconds, command=seconds, data=seconds, total=seconds)


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class Session:
    """A connection to one SMTP server. Every read and write is logged and timed."""

    def __init__(self, transcript: Transcript | None = None,
                 timeouts: Timeouts | None = None, timings: Timings | None = None) -> None:
        self.transcript = transcript or Transcript()
        self.timeouts = timeouts or Timeouts()
        self.timings = timings or Timings()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.peer: str | None = None
        self.tls: TLSInfo | None = None
        self.closed = True
        self.round_trips = 0
        self._wrote = False
        self._deadline = (time.monotonic() + self.timeouts.total) if self.timeouts.total else None

    # -- time -----------------------------------------------------------
    def _budget(self, kind: str) -> float:
        seconds = getattr(self.timeouts, kind)
        if self._deadline is not None:
            seconds = min(seconds, max(self._deadline - time.monotonic(), 0.001))
        return seconds

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings.add(name, (time.perf_counter() - start) * 1000)

    # -- connecting -----------------------------------------------------
    async def connect(self, host: str, port: int) -> float:
        """Open TCP; returns the connect time in ms (one network round trip)."""
        seconds = self._budget("connect")
        self.transcript.note(f"Trying {host}:{port}...")
        start = time.perf_counter()
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=MAX_LINE), seconds)
        except asyncio.TimeoutError:
            self.transcript.error(f"Connection timeout after {seconds:g} s")
            raise ProbeTimeout(f"Connection timeout: no answer from {host}:{port} within "
                               f"{seconds:g} s", stage="connect") from None
        except OSError as error:
            if isinstance(error, socket.gaierror):
                reason = error.strerror or str(error)     # "Name or service not known"
            elif error.errno and error.errno > 0:
                reason = os.strerror(error.errno)         # "Connection refused"
            else:
                reason = str(error) or type(error).__name__
            self.transcript.error(f"Could not connect to {host}:{port}: {reason}")
            raise ConnectError(f"Connection failed: {host}:{port}: {reason}",
                               stage="connect") from None
        elapsed = (time.perf_counter() - start) * 1000
        self.closed = False
        peer = self.writer.get_extra_info("peername")
        self.peer = peer[0] if peer else None
        self.transcript.note(f"Connected to {self.peer}.")
        return elapsed

    @property
    def peer_is_loopback(self) -> bool:
        return is_loopback(self.peer)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None,
                        mode: str) -> TLSInfo:
        """Handshake on the open connection (``mode`` is "starttls" or "implicit")."""
        assert self.reader is not None and self.writer is not None
        if mode == "starttls":
            # Anything the server sent after its 220 came in plaintext and must not be
            # read as if it came over TLS. StreamReader has no public way to drop it.
            leftover = len(self.reader._buffer)  # noqa: SLF001
            if leftover:
                self.reader._buffer.clear()  # noqa: SLF001
                self.transcript.error(f"Discarded {leftover} bytes the server sent in "
                                      "plaintext after its 220 to STARTTLS")
        seconds = self._budget("tls")
        try:
            await asyncio.wait_for(self.writer.start_tls(
                context, server_hostname=server_hostname, ssl_handshake_timeout=seconds),
                seconds + 1)
        except ssl.SSLCertVerificationError as error:
            self.abort()
            reason = error.verify_message or error.reason or str(error)
            self.transcript.error(f"TLS certificate verification failed: {reason}")
            raise TLSError(f"TLS certificate verification failed: {reason}",
                           verify_error=reason) from None
        except asyncio.TimeoutError:
            self.abort()
            self.transcript.error(f"TLS handshake timeout after {seconds:g} s")
            raise ProbeTimeout(f"TLS handshake timeout after {seconds:g} s",
                               stage="tls") from None
        except (ssl.SSLError, OSError, EOFError) as error:
            self.abort()
            reason = getattr(error, "reason", None) or str(error) or type(error).__name__
            self.transcript.error(f"TLS handshake failed: {reason}")
            raise TLSError(f"TLS handshake failed: {reason}") from None
        ssl_object = self.writer.get_extra_info("ssl_object")
        checked = context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        self.tls = TLSInfo.from_ssl(mode, ssl_object, server_hostname, verified=checked)
        tls = self.tls
        self.transcript.note(f"TLS started with cipher {tls.protocol}:{tls.cipher}:{tls.bits}")
        if tls.certificate:
            self.transcript.note(f'TLS peer DN="{tls.certificate.subject}"')
        self.transcript.note("TLS certificate verified" if checked
                             else "TLS certificate NOT verified (insecure)")
        return tls

    # -- the wire -------------------------------------------------------
    async def write_lines(self, lines: list[tuple[str, str | None]], stage: str) -> None:
        """Send command lines in one write; each is ``(line, shown)`` (shown None = line)."""
        assert self.writer is not None
        out = []
        for line, shown in lines:
            if _CONTROL.search(line):
                raise UsageError(f"refusing to send a command with a control character "
                                 f"(CR, LF...): {(shown or line)!r}", stage=stage)
            out.append(line.encode("utf-8") + b"\r\n")
        for line, shown in lines:
            self.transcript.sent(shown if shown is not None else line, tls=self.tls is not None)
        await self.write(b"".join(out), stage)

    async def write(self, data: bytes, stage: str) -> None:
        assert self.writer is not None
        if self.closed:
            raise ConnectError("the connection is closed", stage=stage)
        self._wrote = True
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self._budget("command"))
        except asyncio.TimeoutError:
            self.abort()
            raise ProbeTimeout(f"Timeout sending {STAGE_LABELS.get(stage, stage)}",
                               stage=stage) from None
        except (OSError, ssl.SSLError) as error:
            self.abort()
            raise ConnectError(f"Connection lost sending {STAGE_LABELS.get(stage, stage)}: "
                               f"{error}", stage=stage) from None

    async def read_reply(self, stage: str, kind: str = "command") -> Reply:
        """One complete reply (all its lines); raises on timeout, EOF or a malformed reply."""
        if self._wrote or self.round_trips == 0:
            self.round_trips += 1  # we now wait for the server: one more round trip
            self._wrote = False
        code: int | None = None
        lines: list[str] = []
        size = 0
        while True:
            raw = await self._read_line(stage, kind)
            size += len(raw)
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            self.transcript.received(line, tls=self.tls is not None)
            if size > MAX_REPLY:
                self.abort()
                raise ProtocolError(f"{STAGE_LABELS.get(stage, stage)}: reply longer than "
                                    f"{MAX_REPLY} bytes", stage=stage)
            if len(line) < 3 or not line[:3].isdigit() or line[0] not in "12345" or \
                    (len(line) > 3 and line[3] not in " -"):
                self.abort()
                raise ProtocolError(f"Malformed reply to {STAGE_LABELS.get(stage, stage)}: "
                                    f"{line[:200]!r}", stage=stage)
            this_code = int(line[:3])
            if code is not None and this_code != code:
                self.abort()
                raise ProtocolError(f"Malformed reply to {STAGE_LABELS.get(stage, stage)}: "
                                    f"code changed from {code} to {this_code} mid-reply",
                                    stage=stage)
            code = this_code
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(code, lines)

    async def _read_line(self, stage: str, kind: str) -> bytes:
        assert self.reader is not None
        if self.closed:
            raise ConnectError("the connection is closed", stage=stage)
        seconds = self._budget(kind)
        label = STAGE_LABELS.get(stage, stage)
        try:
            return await asyncio.wait_for(self.reader.readuntil(b"\n"), seconds)
        except asyncio.TimeoutError:
            # Closing is the point: a late reply must never answer the next command.
            self.abort()
            self.transcript.error(f"Timeout after {seconds:g} s waiting for the reply to {label}")
            raise ProbeTimeout(f"Timeout after {seconds:g} s waiting for the reply to {label}",
                               stage=stage) from None
        except asyncio.IncompleteReadError as error:
            self.abort()
            self.transcript.error(f"Connection closed by the server during {label}")
            extra = f" (after {error.partial[:100]!r})" if error.partial else ""
            raise ConnectError(f"Connection closed by the server during {label}{extra}",
                               stage=stage) from None
        except asyncio.LimitOverrunError:
            self.abort()
            raise ProtocolError(f"{label}: reply line longer than {MAX_LINE} bytes",
                                stage=stage) from None
        except (OSError, ssl.SSLError) as error:
            self.abort()
            self.transcript.error(f"Connection lost during {label}: {error}")
            raise ConnectError(f"Connection lost during {label}: {error}", stage=stage) from None

    async def command(self, line: str, stage: str, shown: str | None = None,
                      kind: str = "command") -> Reply:
        await self.write_lines([(line, shown)], stage)
        return await self.read_reply(stage, kind)

    # -- ending -----------------------------------------------------------
    async def quit(self) -> Reply | None:
        """QUIT and close; never raises (the outcome is already decided by then)."""
        reply = None
        if not self.closed:
            try:
                with self.timed("quit"):
                    reply = await self.command("QUIT", "quit")
            except Exception:  # noqa: BLE001 - a failed QUIT changes nothing
                pass
        await self.close()
        return reply

    def abort(self) -> None:
        if self.writer is not None and not self.closed:
            self.writer.transport.abort()
        self.closed = True

    async def close(self) -> None:
        if self.writer is None:
            return
        if not self.closed:
            self.closed = True
            self.writer.close()
        try:
            # A TLS peer may never answer close_notify: do not wait for it for long.
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except Exception:  # noqa: BLE001
            self.writer.transport.abort()
