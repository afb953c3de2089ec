"""The two things the probe does: ``connect`` (what does this server offer?) and ``send``.

Both run over ``Session``: connect, TLS (implicit, STARTTLS or auto), greeting,
EHLO (HELO if refused, EHLO again after STARTTLS), AUTH; ``send`` then runs one
transaction - pipelined when the server offers PIPELINING - with RSET after a
failure and QUIT always. Sync wrappers are in ``probe/__init__.py``.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Union

from . import auth as sasl
from .auth import Auth
from .compose import Message, RawMessage, message_size, to_wire
from .errors import AuthError, ConnectError, ProbeError, ProtocolError, RejectedError, \
    TLSError, UsageError
from .mx import DNSConfig, Target, mail_targets
from .results import Capabilities, ConnectResult, RecipientResult, Reply, SendResult
from .session import Session, Timeouts
from .transcript import Transcript

TLS_MODES = ("none", "starttls", "implicit", "auto")
PIPELINING_MODES = ("auto", "on", "off")
QUIT_AFTER = ("connect", "greeting", "ehlo", "tls", "auth", "mail", "rcpt")
SMTPS_PORT = 465
SMTP_PORT = 25
# EHLO replies after which HELO is worth a try (RFC 5321 4.1.4: old servers say 500/502).
_EHLO_REFUSED = (500, 501, 502, 504, 550)

AnyMessage = Union[Message, RawMessage]


# -- arguments -------------------------------------------------------------
def split_server(text: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise UsageError(f"no host in {text!r}", stage="usage")
    if port_text:
        port = check_port(port_text)
    else:
        port = default_port
    return host, port


def check_port(value: object) -> int:
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise UsageError("Port must be between 1 and 65535", stage="usage") from None
    if not 1 <= port <= 65535:
        raise UsageError("Port must be between 1 and 65535", stage="usage")
    return port


def default_port(tls: str) -> int:
    return SMTPS_PORT if tls == "implicit" else SMTP_PORT


@functools.lru_cache(maxsize=16)
def ssl_context(insecure: bool = False, ca_file: str | None = None) -> ssl.SSLContext:
    """Verifying by default (system CAs, or ``ca_file``); ``insecure`` checks nothing.

    Cached: loading the system CA store takes ~90 ms, more than a whole local send.
    """
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot load CA file {ca_file!r}: {error}", stage="usage") from None


@functools.lru_cache(maxsize=1)
def _fqdn() -> str:
    return socket.getfqdn()


async def default_ehlo_name(session: Session) -> str:
    """This host's FQDN; an address literal when it has none (RFC 5321 4.1.4)."""
    # getfqdn() can block on DNS for seconds: never on the event loop.
    name = await asyncio.to_thread(_fqdn)
    if "." in name and name.isascii() and not name.endswith(".localdomain"):
        return name
    assert session.writer is not None
    local = session.writer.get_extra_info("sockname")[0]
    return f"[IPv6:{local}]" if ":" in local else f"[{local}]"


def _check_mode(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(allowed)}, not {value!r}",
                         stage="usage")
    return value


# -- opening a session: connect, TLS, greeting, EHLO, AUTH ----------------
@dataclass
class _Opened:
    greeting: Reply | None = None
    ehlo: Reply | None = None
    caps: Capabilities = None  # type: ignore[assignment]
    helo_fallback: bool = False
    authenticated: bool | None = None
    mechanism: str | None = None
    rtt_ms: float = 0.0
    stopped: str | None = None

    def __post_init__(self) -> None:
        if self.caps is None:
            self.caps = Capabilities()


@dataclass
class _Options:
    tls: str
    insecure: bool
    ca_file: str | None
    ehlo: str | None
    auth: Auth | None
    allow_plaintext_auth: bool
    quit_after: str | None = None

    @property
    def context(self) -> ssl.SSLContext:
        # Only built when TLS is used: a plain session needs no CA store.
        return ssl_context(self.insecure, self.ca_file)


async def _hello(s: Session, opened: _Opened, opts: _Options) -> None:
    name = opts.ehlo or await default_ehlo_name(s)   # before the clock: it may ask DNS
    with s.timed("ehlo"):
        reply = await s.command(f"EHLO {name}", "ehlo")
    if reply.code == 250:
        opened.ehlo, opened.caps, opened.helo_fallback = reply, Capabilities.parse(reply), False
        return
    if reply.code == 421:
        raise ConnectError(f"EHLO failed: {reply}", stage="ehlo", reply=reply)
    if reply.code not in _EHLO_REFUSED:
        raise ProtocolError(f"EHLO failed: {reply}", stage="ehlo", reply=reply)
    s.transcript.note("EHLO refused: trying HELO")
    with s.timed("helo"):
        helo = await s.command(f"HELO {name}", "helo")
    if helo.code != 250:
        raise ProtocolError(f"EHLO failed: {reply}; HELO failed: {helo}", stage="helo",
                            reply=helo)
    opened.ehlo, opened.helo_fallback = helo, True
    opened.caps = Capabilities(domain=helo.lines[0].split(" ", 1)[0] if helo.lines else "")


async def _authenticate(s: Session, opened: _Opened, credentials: Auth,
                        allow_plaintext: bool) -> None:
    if s.tls is None and not s.peer_is_loopback and not allow_plaintext:
        raise AuthError(f"AUTH refused: the password would go unencrypted to {s.peer}; use "
                        "TLS (starttls/implicit) or allow plaintext AUTH explicitly",
                        stage="auth")
    offered = opened.caps.auth
    if not offered and s.tls is None and opened.caps.has("STARTTLS"):
        raise AuthError("AUTH failed: the server does not offer AUTH before STARTTLS "
                        "(use TLS)", stage="auth")
    mech = sasl.choose(credentials, offered)
    opened.mechanism = mech.name
    line = shown = f"AUTH {mech.name}"
    initial = mech.initial()
    if initial is not None:
        encoded = base64.b64encode(initial).decode("ascii") or "="
        if len(line) + len(encoded) < 500:   # RFC 4954: keep the line under 512 octets
            line += " " + encoded
            shown += " " + mech.shown(encoded, 0)
    with s.timed("auth"):
        reply = await s.command(line, "auth", shown)
        step = 0
        while reply.code == 334:
            step += 1
            if step > 4:
                raise AuthError(f"AUTH {mech.name} failed: too many challenges", stage="auth",
                                reply=reply)
            try:
                challenge = base64.b64decode(reply.lines[0].strip() or b"", validate=True)
            except ValueError:
                raise AuthError(f"AUTH {mech.name} failed: the challenge is not base64: "
                                f"{reply}", stage="auth", reply=reply) from None
            encoded = base64.b64encode(mech.respond(challenge)).decode("ascii")
            reply = await s.command(encoded, "auth", mech.shown(encoded, step))
    if reply.code != 235:
        opened.authenticated = False
        raise AuthError(f"AUTH {mech.name} failed: {reply}", stage="auth", reply=reply)
    opened.authenticated = True


async def _open(s: Session, target: Target, opts: _Options) -> _Opened:
    """Run everything up to (not including) the mail transaction."""
    opened = _Opened()
    with s.timed("connect"):
        opened.rtt_ms = await s.connect(target.connect_to, target.port)
    if opts.quit_after == "connect":
        opened.stopped = "connect"
        return opened
    implicit = opts.tls == "implicit" or (opts.tls == "auto" and target.port == SMTPS_PORT)
    if implicit:
        with s.timed("tls"):
            await s.start_tls(opts.context, target.host, "implicit")
    with s.timed("greeting"):
        opened.greeting = await s.read_reply("greeting")
    if opened.greeting.code != 220:
        raise ConnectError(f"Invalid SMTP greeting: {opened.greeting}", stage="greeting",
                           reply=opened.greeting)
    if opts.quit_after == "greeting":
        opened.stopped = "greeting"
        return opened
    await _hello(s, opened, opts)
    if opts.quit_after == "ehlo":
        opened.stopped = "ehlo"
        return opened
    if not implicit and opts.tls in ("starttls", "auto"):
        if opened.caps.has("STARTTLS"):
            with s.timed("starttls"):
                reply = await s.command("STARTTLS", "starttls")
            if reply.code != 220:
                raise TLSError(f"STARTTLS failed: {reply}", stage="starttls", reply=reply)
            with s.timed("tls"):
                await s.start_tls(opts.context, target.host, "starttls")
            # RFC 3207: forget what the server said before TLS and ask again.
            await _hello(s, opened, opts)
        elif opts.tls == "starttls":
            raise TLSError("STARTTLS failed: the server does not offer STARTTLS",
                           stage="starttls")
        else:
            s.transcript.note("The server does not offer STARTTLS: continuing without TLS")
    if opts.quit_after == "tls":
        opened.stopped = "tls"
        return opened
    if opts.auth is not None:
        await _authenticate(s, opened, opts.auth, opts.allow_plaintext_auth)
    if opts.quit_after == "auth":
        opened.stopped = "auth"
    return opened


async def _finish(s: Session, error: BaseException | None = None) -> None:
    """QUIT (or just close when the stop came before the greeting)."""
    if isinstance(error, ProbeError):
        last = s.transcript.entries[-1] if s.transcript.entries else None
        if last is None or error.message not in last.text:
            s.transcript.error(error.message)
    await s.quit()


# -- connect -----------------------------------------------------------------
async def async_connect(host: str, port: int | None = None, *, tls: str = "auto",
                        insecure: bool = False, ca_file: str | None = None,
                        timeout: float | Timeouts | None = None, ehlo: str | None = None,
                        auth: Auth | None = None,
                        allow_plaintext_auth: bool = False) -> ConnectResult:
    """Greeting, EHLO capabilities, TLS facts and timings of one server; QUIT.

    A certificate that does not verify is reported, not raised: the probe connects
    again without verification (and without AUTH) to show what the server presents,
    and the result says ``tls.verified = False`` with the reason.
    """
    _check_mode("tls", tls, TLS_MODES)
    host, given_port = split_server(host, port)
    port = check_port(given_port) if given_port is not None else default_port(tls)
    timeouts = Timeouts.of(timeout)
    transcript = Transcript()
    target = Target(host, port)
    opts = _Options(tls, insecure, ca_file, ehlo, auth, allow_plaintext_auth)
    try:
        return await _connect_once(target, opts, timeouts, transcript)
    except TLSError as error:
        if error.verify_error is None or insecure:
            raise
        transcript.note("Connecting again without verification to show the certificate "
                        "(no AUTH on that connection)")
        retry = _Options(tls, True, None, ehlo, None, False)
        result = await _connect_once(target, retry, timeouts, transcript)
        assert result.tls is not None
        result.tls.verified = False
        result.tls.verify_error = error.verify_error
        return result


async def _connect_once(target: Target, opts: _Options, timeouts: Timeouts,
                        transcript: Transcript) -> ConnectResult:
    s = Session(transcript, timeouts)
    start = time.perf_counter()
    try:
        opened = await _open(s, target, opts)
    except ProbeError as error:
        await _finish(s, error)
        error.transcript = transcript
        raise
    except BaseException:
        s.abort()
        raise
    await s.quit()
    s.timings.add("total", (time.perf_counter() - start) * 1000)
    assert opened.greeting is not None
    return ConnectResult(
        host=target.host, port=target.port, address=s.peer, greeting=opened.greeting,
        ehlo=opened.ehlo, capabilities=opened.caps, helo_fallback=opened.helo_fallback,
        tls=s.tls, authenticated=opened.authenticated, auth_mechanism=opened.mechanism,
        rtt_ms=opened.rtt_ms, timings=s.timings, transcript=transcript,
        round_trips=s.round_trips)


# -- send --------------------------------------------------------------------
async def async_send(message: AnyMessage, server: str | None = None, port: int | None = None,
                     *, tls: str = "auto", insecure: bool = False, ca_file: str | None = None,
                     auth: Auth | None = None, allow_plaintext_auth: bool = False,
                     ehlo: str | None = None, pipelining: str = "auto",
                     quit_after: str | None = None, timeout: float | Timeouts | None = None,
                     dns: DNSConfig | None = None) -> SendResult:
    """Send ``message`` to ``server`` (``host`` or ``host:port``) or, without one, to the
    recipients' domain's MX hosts in preference order (the first that answers).

    Returns when the server accepted the message for at least one recipient (check
    ``result.rejected`` for the others). Raises ``RejectedError`` when it accepted it
    for none, and the other ``ProbeError`` kinds for what went wrong before.
    """
    _check_mode("tls", tls, TLS_MODES)
    _check_mode("pipelining", pipelining, PIPELINING_MODES)
    if quit_after is not None:
        _check_mode("quit_after", quit_after, QUIT_AFTER)
    sender = message.envelope_sender
    recipients = message.recipients()
    if not recipients:
        raise UsageError("no recipients", stage="usage")
    raw = message.to_bytes()
    timeouts = Timeouts.of(timeout)
    transcript = Transcript()
    opts = _Options(tls, insecure, ca_file, ehlo, auth, allow_plaintext_auth, quit_after)
    if server is not None:
        host, given_port = split_server(server, port)
        targets = [Target(host, given_port or default_port(tls))]
    else:
        domains = {r.rpartition("@")[2].lower() for r in recipients}
        if len(domains) != 1 or "" in domains:
            raise UsageError("without a server, every recipient must be in one domain "
                             f"(got {', '.join(sorted(domains))})", stage="usage")
        try:
            targets = await mail_targets(domains.pop(), port or SMTP_PORT, dns, transcript)
        except ProbeError as error:
            error.transcript = transcript
            raise
    last_error: ProbeError | None = None
    for index, target in enumerate(targets):
        s = Session(transcript, timeouts)
        try:
            return await _send_on(s, target, opts, message, sender, recipients, raw,
                                  pipelining)
        except ConnectError as error:
            # Another MX host is worth a try only if this one never said hello.
            error.transcript = transcript
            if error.stage not in ("connect", "greeting") or index == len(targets) - 1:
                raise
            last_error = error
            transcript.note(f"Trying the next mail host ({error.message})")
        except ProbeError as error:
            error.transcript = transcript
            raise
    assert last_error is not None  # pragma: no cover - the loop returns or raises
    raise last_error


async def _send_on(s: Session, target: Target, opts: _Options, message: AnyMessage,
                   sender: str, recipients: list[str], raw: bytes,
                   pipelining: str) -> SendResult:
    start = time.perf_counter()
    size = message_size(raw)
    result = SendResult(host=target.host, port=target.port, address=None, sender=sender,
                        greeting=None, recipients=[RecipientResult(r, None) for r in recipients],
                        mail_reply=None, final_reply=None, pipelined=False, tls=None,
                        capabilities=Capabilities(), authenticated=None, auth_mechanism=None,
                        size=size, timings=s.timings, transcript=s.transcript)

    def fill(opened: _Opened) -> None:
        result.address, result.tls, result.greeting = s.peer, s.tls, opened.greeting
        result.capabilities, result.authenticated = opened.caps, opened.authenticated
        result.auth_mechanism = opened.mechanism
        result.round_trips = s.round_trips

    opened = _Opened()
    try:
        opened = await _open(s, target, opts)
        fill(opened)
        if opened.stopped is None:
            await _transaction(s, opened, result, opts, message, raw, pipelining)
    except ProbeError as error:
        fill(opened)
        result.address = result.address or s.peer
        error.result = result
        if isinstance(error, RejectedError) and not s.closed:
            await _reset(s)
        await _finish(s, error)
        result.round_trips = s.round_trips
        raise
    except BaseException:
        s.abort()
        raise
    result.stopped_after = opened.stopped or (
        opts.quit_after if opts.quit_after in ("mail", "rcpt") else None)
    if opened.stopped == "connect":
        await s.close()   # nothing was said yet: just hang up
    else:
        await s.quit()
    result.round_trips = s.round_trips
    s.timings.add("total", (time.perf_counter() - start) * 1000)
    return result


async def _reset(s: Session) -> None:
    try:
        with s.timed("rset"):
            await s.command("RSET", "rset")
    except ProbeError:
        pass


async def _transaction(s: Session, opened: _Opened, result: SendResult, opts: _Options,
                       message: AnyMessage, raw: bytes, pipelining: str) -> None:
    caps = opened.caps
    needs_utf8 = message.needs_smtputf8()
    needs_8bit = not raw.isascii()
    if needs_utf8 and not caps.has("SMTPUTF8"):
        raise RejectedError("The message needs SMTPUTF8 (a non-ASCII address or header) but "
                            "the server does not offer it", stage="mail")
    if needs_8bit and not caps.has("8BITMIME"):
        raise RejectedError("The message has 8-bit data but the server does not offer "
                            "8BITMIME", stage="mail")
    params = []
    if caps.has("SIZE"):
        params.append(f"SIZE={result.size}")
    if needs_8bit:
        params.append("BODY=8BITMIME")
    if needs_utf8:
        params.append("SMTPUTF8")
    mail = f"MAIL FROM:<{result.sender}>" + "".join(" " + p for p in params)
    rcpts = [f"RCPT TO:<{r.address}>" for r in result.recipients]
    with_rcpts = opts.quit_after != "mail"
    with_data = opts.quit_after not in ("mail", "rcpt")
    result.pipelined = pipelining == "on" or (pipelining == "auto" and caps.has("PIPELINING"))
    data_reply: Reply | None = None

    if result.pipelined:
        group = [mail] + (rcpts if with_rcpts else []) + (["DATA"] if with_data else [])
        with s.timed("pipeline"):
            # RFC 2920: MAIL, every RCPT and DATA in one write, then the replies in order.
            await s.write_lines([(line, None) for line in group], "mail")
            result.mail_reply = await s.read_reply("mail")
            if with_rcpts:
                for rcpt in result.recipients:
                    rcpt.reply = await s.read_reply("rcpt")
            if with_data:
                data_reply = await s.read_reply("data")
    else:
        with s.timed("mail"):
            result.mail_reply = await s.command(mail, "mail")
        if result.mail_reply.code // 100 == 2 and with_rcpts:
            for line, rcpt in zip(rcpts, result.recipients):
                with s.timed("rcpt"):
                    rcpt.reply = await s.command(line, "rcpt")
        if result.mail_reply.code // 100 == 2 and result.accepted and with_data:
            with s.timed("data"):
                data_reply = await s.command("DATA", "data")

    failure: RejectedError | None = None
    if result.mail_reply.code // 100 != 2:
        failure = RejectedError(f"MAIL FROM failed: {result.mail_reply}", stage="mail",
                                reply=result.mail_reply)
    elif with_rcpts and not result.accepted:
        first = result.rejected[0].reply if result.rejected else None
        failure = RejectedError(f"RCPT TO failed: {first}", stage="rcpt", reply=first)
    if failure is not None:
        if data_reply is not None and data_reply.code == 354:
            # A pipelined DATA was accepted anyway: end it with an empty message.
            await s.write_lines([(".", None)], "message")
            await s.read_reply("message", "data")
        raise failure
    if not with_data:
        return
    assert data_reply is not None
    if data_reply.code != 354:
        raise RejectedError(f"DATA command failed: {data_reply}", stage="data", reply=data_reply)
    wire = to_wire(raw) + b".\r\n"
    s.transcript.body(wire, tls=s.tls is not None)
    with s.timed("message"):
        await s.write(wire, "message")
        result.final_reply = await s.read_reply("message", "data")
    if result.final_reply.code // 100 != 2:
        raise RejectedError(f"Message rejected: {result.final_reply}", stage="message",
                            reply=result.final_reply)
