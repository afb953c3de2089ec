"""SMTP AUTH: who may log in, the SASL exchanges, and the slow-down after failures.

- ``Authenticator`` checks credentials in one of two modes: ``any`` accepts every
  well-formed credential (as MailHog and Mailpit do), ``file`` checks a
  htpasswd-style ``CredentialsFile`` (plain-text or bcrypt entries).
- ``SmtpAuth`` is the session side, mixed into ``SinkSMTP``: the AUTH command with
  PLAIN (initial response or not), LOGIN and CRAM-MD5. It replaces aiosmtpd's AUTH
  so that every reply is ours and the checks can await (bcrypt runs in a thread,
  the slow-down is an ``asyncio.sleep``: other sessions never wait).
- ``FailureThrottle`` slows down a client IP that keeps failing.

Usernames and passwords are UTF-8 (RFC 4616); they are compared exactly.
"""
from __future__ import annotations

import asyncio
import binascii
import hmac
import logging
import os
import secrets
import time
from base64 import b64decode, b64encode
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

import bcrypt
from aiosmtpd.smtp import syntax

from ..settings import Settings, SettingsError

log = logging.getLogger(__name__)

MECHANISMS = ("CRAM-MD5", "LOGIN", "PLAIN")  # as advertised in EHLO
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
UNSUPPORTED_HASHES = ("$apr1$", "{SHA}", "$1$", "$5$", "$6$", "$argon2")
BCRYPT_CONCURRENCY = 2  # bcrypt is slow on purpose: don't let it take every worker thread

REPLY_OK = "235 2.7.0 Authentication successful"
REPLY_INVALID = "535 5.7.8 Authentication credentials invalid"

# Sends a 334 challenge and returns the client's decoded answer, or None when the
# client cancelled or sent bad base64 (the error reply has been sent then).
Ask = Callable[[bytes], Awaitable[Optional[bytes]]]


@dataclass(frozen=True)
class AuthIdentity:
    """Who logged in on a session, and how (kept in aiosmtpd's ``session.auth_data``)."""

    user: str
    mechanism: str


class SaslError(ValueError):
    """The client's SASL message is malformed; the text is the 501 reply."""


# -- credentials ------------------------------------------------------------

@dataclass(frozen=True)
class Credential:
    secret: str          # the plain-text password, or a bcrypt hash
    hashed: bool


def parse_credentials(text: str, source: str) -> dict[str, Credential]:
    """``user:password`` lines (``#`` comments and blank lines skipped) → entries."""
    entries: dict[str, Credential] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, colon, secret = line.partition(":")
        if not colon or not user:
            raise SettingsError(f"{source}:{number}: expected user:password")
        if secret.startswith(UNSUPPORTED_HASHES):
            raise SettingsError(f"{source}:{number}: unsupported password hash for {user!r}; "
                                "use plain text or bcrypt (htpasswd -B)")
        entries[user] = Credential(secret, secret.startswith(BCRYPT_PREFIXES))
    return entries


class CredentialsFile:
    """The ``--auth-file``; re-read when it changes, so users can edit it while running."""

    def __init__(self, path: str):
        self.path = path
        self._mtime: float | None = None
        self._entries: dict[str, Credential] = {}
        self._load()  # errors here stop the start-up with a clear message

    def _load(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
            with open(self.path, encoding="utf-8-sig") as handle:  # a BOM is not a username
                text = handle.read()
        except FileNotFoundError:
            raise SettingsError(f"--auth-file: no such file: {self.path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(f"--auth-file: cannot read {self.path}: {error}") from None
        self._entries = parse_credentials(text, self.path)
        self._mtime = mtime

    def entries(self) -> dict[str, Credential]:
        try:
            changed = os.stat(self.path).st_mtime_ns != self._mtime
        except OSError:
            changed = False  # gone for a moment (an editor saving): keep what we have
        if changed:
            try:
                self._load()
            except SettingsError as error:
                log.warning("keeping the previous credentials: %s", error)
        return self._entries


# -- the slow-down ----------------------------------------------------------

class FailureThrottle:
    """Slows down a client IP that keeps failing AUTH.

    The first ``free`` failures are answered at once; then each failure's 535 waits
    ``first_delay``, doubling each time up to ``max_delay``. A success, or
    ``window`` seconds without a failure, forgets the IP.
    """

    MAX_TRACKED = 10_000

    def __init__(self, free: int = 3, first_delay: float = 0.5, max_delay: float = 8.0,
                 window: float = 300.0):
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.window = window
        self._failures: dict[str, tuple[int, float]] = {}  # ip → (count, last failure)

    def failed(self, ip: str) -> float:
        """Count a failure; return how long to wait before answering it."""
        now = time.monotonic()
        count, last = self._failures.pop(ip, (0, now))
        count = 1 if now - last > self.window else count + 1
        self._failures[ip] = (count, now)  # re-inserted: the dict stays oldest-first
        while len(self._failures) > self.MAX_TRACKED:
            del self._failures[next(iter(self._failures))]
        if count <= self.free:
            return 0.0
        return min(self.max_delay, self.first_delay * 2 ** (count - self.free - 1))

    def succeeded(self, ip: str) -> None:
        self._failures.pop(ip, None)


# -- checking credentials ---------------------------------------------------

class Authenticator:
    """Checks credentials for one sink (mode ``any`` or ``file``)."""

    def __init__(self, mode: str, credentials: CredentialsFile | None = None,
                 throttle: FailureThrottle | None = None):
        assert mode in ("any", "file") and (mode == "any" or credentials is not None)
        self.mode = mode
        self.credentials = credentials
        self.throttle = throttle or FailureThrottle()
        self._bcrypt_slots = asyncio.Semaphore(BCRYPT_CONCURRENCY)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator | None":
        """The authenticator these settings ask for; None with ``--auth off``."""
        s = settings
        if s.auth == "off":
            if s.require_auth:
                raise SettingsError("--require-auth needs --auth any or --auth file")
            if s.auth_file:
                raise SettingsError("--auth-file is used with --auth file")
            return None
        if s.no_starttls and s.smtps_port is None and not s.auth_allow_insecure:
            raise SettingsError("AUTH is offered only over TLS: drop --no-starttls, "
                                "add --smtps-port, or allow --auth-allow-insecure")
        if s.auth == "any":
            return cls("any")
        if not s.auth_file:
            raise SettingsError("--auth file needs --auth-file PATH")
        return cls("file", CredentialsFile(s.auth_file))

    async def check_password(self, user: str, password: str) -> bool:
        if self.mode == "any":
            return True
        assert self.credentials is not None
        entry = self.credentials.entries().get(user)
        if entry is None:
            return False
        if not entry.hashed:
            return hmac.compare_digest(entry.secret.encode(), password.encode())
        async with self._bcrypt_slots:
            return await asyncio.to_thread(_bcrypt_matches, password, entry.secret)

    def check_cram_md5(self, user: str, challenge: bytes, digest: str) -> bool:
        if self.mode == "any":
            return True
        assert self.credentials is not None
        entry = self.credentials.entries().get(user)
        if entry is None or entry.hashed:
            if entry is not None:
                log.info("CRAM-MD5 cannot check %r: its password is a bcrypt hash", user)
            return False
        expected = hmac.new(entry.secret.encode(), challenge, "md5").hexdigest()
        return hmac.compare_digest(expected.encode(), digest.lower().encode())

    async def authenticate(self, mechanism: str, initial: str | None, ask: Ask, peer_ip: str,
                           hostname: str) -> tuple[str | None, AuthIdentity | None]:
        """Run one SASL exchange: (reply to send or None if sent, identity on success)."""
        try:
            if mechanism == "PLAIN":
                result = await self._plain(initial, ask)
            elif mechanism == "LOGIN":
                result = await self._login(initial, ask)
            else:
                result = await self._cram_md5(initial, ask, hostname)
        except SaslError as error:
            return str(error), None
        if result is None:
            return None, None  # the client cancelled or sent bad base64; already answered
        user, ok = result
        if ok:
            self.throttle.succeeded(peer_ip)
            return REPLY_OK, AuthIdentity(user, mechanism)
        delay = self.throttle.failed(peer_ip)
        log.info("AUTH %s failed for %r from %s (answer delayed %.1fs)",
                 mechanism, user, peer_ip, delay)
        if delay:
            await asyncio.sleep(delay)
        return REPLY_INVALID, None

    async def _plain(self, initial: str | None, ask: Ask) -> tuple[str, bool] | None:
        data = decode_base64(initial) if initial is not None else await ask(b"")
        if data is None:
            return None
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise SaslError("501 5.5.2 PLAIN credentials must be authzid NUL user NUL password")
        authzid, user, password = (utf8(part) for part in parts)
        if authzid and authzid != user and self.mode == "file":
            return user, False  # acting as someone else is not something a sink grants
        return user, await self.check_password(user, password)

    async def _login(self, initial: str | None, ask: Ask) -> tuple[str, bool] | None:
        user_bytes = decode_base64(initial) if initial is not None else await ask(b"Username:")
        if user_bytes is None:
            return None
        password_bytes = await ask(b"Password:")
        if password_bytes is None:
            return None
        user = utf8(user_bytes)
        return user, await self.check_password(user, utf8(password_bytes))

    async def _cram_md5(self, initial: str | None, ask: Ask,
                        hostname: str) -> tuple[str, bool] | None:
        if initial is not None:
            raise SaslError("501 5.5.4 CRAM-MD5 takes no initial response")
        challenge = f"<{secrets.randbits(63)}.{int(time.time())}@{hostname}>".encode()
        answer = await ask(challenge)
        if answer is None:
            return None
        user_bytes, space, digest = answer.rpartition(b" ")
        if not space or not user_bytes or len(digest) != 32:
            raise SaslError("501 5.5.2 CRAM-MD5 answer must be user SP hex-digest")
        return utf8(user_bytes), self.check_cram_md5(utf8(user_bytes), challenge, utf8(digest))


def _bcrypt_matches(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # a malformed hash, or a password over bcrypt's 72 bytes
        return False


def decode_base64(text: str) -> bytes:
    """A SASL base64 field; ``=`` is an empty one (RFC 4954)."""
    if text == "=":
        return b""
    try:
        return b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SaslError("501 5.5.2 Cannot decode base64") from None


def utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("501 5.5.2 Credentials must be UTF-8") from None


# -- the session side ---------------------------------------------------------

class SmtpAuth:
    """The AUTH command for ``SinkSMTP`` (an aiosmtpd ``SMTP`` subclass).

    The session sets ``auth`` (an ``Authenticator`` or None for ``--auth off``)
    and ``auth_on_plaintext`` (``--auth-allow-insecure``).
    """

    auth: Authenticator | None = None
    auth_on_plaintext: bool = False

    # Provided by aiosmtpd's SMTP / SinkSMTP.
    session: Any
    envelope: Any
    hostname: str
    _reader: Any
    push: Callable[[Any], Awaitable[None]]
    check_helo_needed: Callable[..., Awaitable[bool]]
    tls_active: bool

    def auth_offered(self) -> bool:
        return self.auth is not None and (self.tls_active or self.auth_on_plaintext)

    def ehlo_auth_line(self) -> str | None:
        """The ``250-AUTH ...`` EHLO line, or None when AUTH is not offered here."""
        return "250-AUTH " + " ".join(MECHANISMS) if self.auth_offered() else None

    @syntax("AUTH <mechanism> [initial-response]")
    async def smtp_AUTH(self, arg: Optional[str]) -> None:
        if self.auth is None:
            await self.push("502 5.5.1 Error: AUTH is not enabled on this server")
            return
        if await self.check_helo_needed("EHLO"):
            return
        if not self.session.extended_smtp:
            await self.push("503 5.5.1 Error: send EHLO first")
        elif not self.auth_offered():
            await self.push("538 5.7.11 Encryption required for requested authentication "
                            "mechanism")
        elif self.session.authenticated:
            await self.push("503 5.5.1 Error: already authenticated")
        elif self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: AUTH not allowed during a mail transaction")
        else:
            await self._authenticate((arg or "").split())

    async def _authenticate(self, args: list[str]) -> None:
        assert self.auth is not None
        if not 1 <= len(args) <= 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = args[0].upper()
        if mechanism not in MECHANISMS:
            await self.push(f"504 5.5.4 Unrecognized authentication mechanism; "
                            f"use {', '.join(MECHANISMS)}")
            return
        peer = self.session.peer
        peer_ip = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else str(peer)
        reply, identity = await self.auth.authenticate(
            mechanism, args[1] if len(args) == 2 else None, self._sasl_challenge,
            peer_ip, self.hostname)
        if identity is not None:
            self.session.authenticated = True
            self.session.auth_data = identity
        if reply is not None:
            await self.push(reply)

    async def _sasl_challenge(self, challenge: bytes) -> bytes | None:
        await self.push(b"334 " + b64encode(challenge))
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            # Longer than any credential: drop it and say so (the connection stays usable).
            await self._discard_line()
            await self.push("500 5.5.2 Line too long")
            return None
        answer = line.strip()
        if answer == b"*":
            await self.push("501 5.7.0 Authentication cancelled")
            return None
        try:
            return decode_base64(answer.decode("ascii", "replace"))
        except SaslError as error:
            await self.push(str(error))
            return None

    async def _discard_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as error:
                await self._reader.readexactly(error.consumed)
