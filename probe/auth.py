"""SASL mechanisms for SMTP AUTH: PLAIN, LOGIN, CRAM-MD5 and XOAUTH2.

A mechanism turns server challenges into client responses (raw bytes; the session
does the base64) and says how each response may be shown in the transcript: only
the LOGIN user name is shown, everything derived from a secret is redacted.
Credentials are UTF-8 (the seed's btoa() broke on anything past Latin-1).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from .errors import AuthError, UsageError

# Our order of preference when the caller does not name a mechanism.
PREFERENCE = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]
SUPPORTED = set(PREFERENCE)


@dataclass
class Auth:
    """Credentials: a user, a password (the access token for XOAUTH2), a mechanism or None."""

    user: str
    password: str = field(repr=False)
    mechanism: str | None = None

    def __post_init__(self) -> None:
        if self.mechanism is not None:
            self.mechanism = self.mechanism.upper()
            if self.mechanism not in SUPPORTED:
                raise UsageError(f"unknown AUTH mechanism {self.mechanism!r}; "
                                 f"choose one of {', '.join(PREFERENCE)}", stage="auth")


class Mechanism:
    """One SASL exchange. ``initial()`` goes on the AUTH line; ``respond()`` answers 334s."""

    name = ""

    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")
        self.step = 0

    def initial(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        raise AuthError(f"AUTH {self.name} failed: unexpected challenge", stage="auth")

    def shown(self, response_b64: str, step: int) -> str:
        """What the transcript shows for the response at ``step`` (0 = initial)."""
        return "[credentials redacted]"

    def secrets(self) -> list[bytes]:
        """Bytes that must never appear in a transcript (checked by the tests)."""
        return [self.password]


class Plain(Mechanism):
    name = "PLAIN"

    def initial(self) -> bytes:
        return b"\0" + self.user + b"\0" + self.password

    def respond(self, challenge: bytes) -> bytes:
        # Only reached when the initial response was left off (a very long one).
        return self.initial()


class Login(Mechanism):
    name = "LOGIN"

    def respond(self, challenge: bytes) -> bytes:
        self.step += 1
        if self.step == 1:
            return self.user
        if self.step == 2:
            return self.password
        return super().respond(challenge)

    def shown(self, response_b64: str, step: int) -> str:
        # The user name is not a secret, and seeing it helps debugging.
        if step == 1:
            return f"{response_b64}    (user {self.user.decode('utf-8', 'replace')})"
        return super().shown(response_b64, step)


class CramMD5(Mechanism):
    name = "CRAM-MD5"

    def respond(self, challenge: bytes) -> bytes:
        self.step += 1
        if self.step > 1:
            return super().respond(challenge)
        digest = hmac.new(self.password, challenge, hashlib.md5).hexdigest()
        return self.user + b" " + digest.encode("ascii")


class XOAuth2(Mechanism):
    """Google/Microsoft OAuth 2.0 bearer tokens; the password is the access token."""

    name = "XOAUTH2"

    def initial(self) -> bytes:
        return b"user=" + self.user + b"\x01auth=Bearer " + self.password + b"\x01\x01"

    def respond(self, challenge: bytes) -> bytes:
        # The server sent its error details (base64 JSON); an empty line ends the exchange.
        return b""


MECHANISMS: dict[str, type[Mechanism]] = {
    "PLAIN": Plain, "LOGIN": Login, "CRAM-MD5": CramMD5, "XOAUTH2": XOAuth2}


def choose(auth: Auth, offered: list[str]) -> Mechanism:
    """The mechanism to use: the one asked for if offered, else our first offered one."""
    offered = [name.upper() for name in offered]
    if not offered:
        raise AuthError("AUTH failed: the server does not offer AUTH", stage="auth")
    if auth.mechanism:
        if auth.mechanism not in offered:
            raise AuthError(f"AUTH {auth.mechanism} failed: the server offers only "
                            f"{' '.join(offered)}", stage="auth")
        return MECHANISMS[auth.mechanism](auth.user, auth.password)
    for name in PREFERENCE:
        if name in offered:
            return MECHANISMS[name](auth.user, auth.password)
    raise AuthError(f"AUTH failed: no mechanism in common (the server offers "
                    f"{' '.join(offered)}; we speak {' '.join(PREFERENCE)})", stage="auth")
