"""Chaos for the SMTP side: MailHog's Jim, and deterministic faults a test can ask for.

Jim (MailHog's chaos monkey) draws at random: refuse a connection, throttle a
session, drop the connection before a command, refuse MAIL, RCPT or AUTH. The
draws come from one ``random.Random`` per server; give it a seed and a client
that talks in the same order sees the same replies every run.

Faults are rules, not dice. One rule per item, as text:

    rcpt bounce@* 550 5.1.1 No such user     fixed reply to matching RCPT TO
    mail spam@* 554 5.7.1 Go away            fixed reply to matching MAIL FROM
    data *@slow.example 451 4.3.0 Try later  fixed reply at the end of DATA (any recipient)
    greylist [SECONDS]                       first try of sender+recipient from an IP: 451,
                                             a retry after SECONDS (default 0) is accepted
    rate N/PERIOD                            421 and hang up past N messages per PERIOD
                                             (s, min, h, or e.g. 10s) from one IP
    delay STAGE SECONDS                      wait before the reply to connect, helo, mail,
                                             rcpt or data

Globs (``*``, ``?``) match case-insensitively. ``SinkSMTP`` calls in here at its
hook points; nothing else in the sink knows about chaos.
"""
from __future__ import annotations

import asyncio
import collections
import fnmatch
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..settings import Settings

STAGES = ("connect", "helo", "mail", "rcpt", "data")
_REPLY_STAGES = ("mail", "rcpt", "data")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}


class FaultError(ValueError):
    """A fault rule or Jim setting cannot be understood; the message says which and why."""


# -- Jim -----------------------------------------------------------------------

# MailHog's JSON keys, in its order, and our field names.
JIM_KEYS = (
    ("DisconnectChance", "disconnect"),
    ("AcceptChance", "accept"),
    ("LinkSpeedAffect", "linkspeed_affect"),
    ("LinkSpeedMin", "linkspeed_min"),
    ("LinkSpeedMax", "linkspeed_max"),
    ("RejectSenderChance", "reject_sender"),
    ("RejectRecipientChance", "reject_recipient"),
    ("RejectAuthChance", "reject_auth"),
)


@dataclass
class Jim:
    """MailHog's Jim settings; the defaults are MailHog's, kept once in ``Settings``."""

    disconnect: float = Settings.jim_disconnect
    accept: float = Settings.jim_accept
    linkspeed_affect: float = Settings.jim_linkspeed_affect
    linkspeed_min: float = Settings.jim_linkspeed_min
    linkspeed_max: float = Settings.jim_linkspeed_max
    reject_sender: float = Settings.jim_reject_sender
    reject_recipient: float = Settings.jim_reject_recipient
    reject_auth: float = Settings.jim_reject_auth

    @classmethod
    def from_settings(cls, settings: Any) -> "Jim":
        return cls(**{name: float(getattr(settings, "jim_" + name)) for _, name in JIM_KEYS})

    def to_json(self) -> dict[str, float | int]:
        # Go prints a whole float64 without ".0"; so do we.
        def number(value: float) -> float | int:
            return int(value) if float(value).is_integer() else value
        return {key: number(getattr(self, name)) for key, name in JIM_KEYS}

    @classmethod
    def from_json(cls, data: Any) -> "Jim":
        """MailHog's decoding: keys match case-insensitively, a key left out is 0."""
        if not isinstance(data, Mapping):
            raise FaultError("Jim's settings must be a JSON object")
        by_lower = {str(key).lower(): value for key, value in data.items()}
        values = {}
        for key, name in JIM_KEYS:
            value = by_lower.get(key.lower(), 0)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value)):
                raise FaultError(f"{key} must be a number, not {value!r}")
            if key.endswith("Chance") or key == "LinkSpeedAffect":
                if not 0 <= value <= 1:
                    raise FaultError(f"{key} must be between 0 and 1, not {value}")
            elif value < 0:
                raise FaultError(f"{key} must be 0 or more, not {value}")
            values[name] = float(value)
        if values["linkspeed_min"] > values["linkspeed_max"] and values["linkspeed_affect"]:
            raise FaultError("LinkSpeedMin must not be more than LinkSpeedMax")
        return cls(**values)


# -- fault rules -----------------------------------------------------------------

@dataclass
class FixedReply:
    stage: str
    pattern: str
    reply: str

    def matches(self, address: str) -> bool:
        return fnmatch.fnmatchcase(address.lower(), self.pattern.lower())


@dataclass
class Greylist:
    retry_after: float = 0.0


@dataclass
class RateLimit:
    messages: int
    period: float


@dataclass
class Delay:
    stage: str
    seconds: float


Rule = FixedReply | Greylist | RateLimit | Delay


@dataclass
class Fault:
    """One rule with the text it was written as (shown back by the API)."""

    text: str
    rule: Rule


def _seconds(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultError(f"{what}: {text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise FaultError(f"{what}: {text!r} is not a number of seconds")
    if value < 0:
        raise FaultError(f"{what}: seconds must be 0 or more")
    return value


def _period(text: str) -> float:
    match = re.fullmatch(r"(\d*(?:\.\d+)?)\s*([a-z]+)", text.strip().lower())
    if not match or match.group(2) not in _PERIODS:
        raise FaultError(f"rate: period {text!r} must be like min, s, h or 10s")
    count = float(match.group(1)) if match.group(1) else 1.0
    if count <= 0:
        raise FaultError("rate: the period must be longer than 0")
    return count * _PERIODS[match.group(2)]


def parse_fault(text: str) -> Fault:
    """One rule from its text form (see the module docstring)."""
    words = text.split()
    if not words:
        raise FaultError("empty fault rule")
    kind = words[0].lower()
    if kind in _REPLY_STAGES:
        if len(words) < 3 or not re.fullmatch(r"[2-5]\d\d", words[2]):
            raise FaultError(f"{text!r}: wants '{kind} PATTERN CODE [TEXT]', e.g. "
                             f"'{kind} bounce@* 550 5.1.1 No such user'")
        reply = " ".join(words[2:]) if len(words) > 3 else f"{words[2]} Refused by a fault rule"
        return Fault(text, FixedReply(kind, words[1], reply))
    if kind == "greylist":
        if len(words) > 2:
            raise FaultError(f"{text!r}: wants 'greylist [SECONDS]'")
        retry = _seconds(words[1], "greylist") if len(words) == 2 else 0.0
        return Fault(text, Greylist(retry))
    if kind == "rate":
        match = re.fullmatch(r"(\d+)\s*/\s*(\S+)", " ".join(words[1:]))
        if not match or int(match.group(1)) < 1:
            raise FaultError(f"{text!r}: wants 'rate N/PERIOD', e.g. 'rate 10/min'")
        return Fault(text, RateLimit(int(match.group(1)), _period(match.group(2))))
    if kind == "delay":
        if len(words) != 3 or words[1].lower() not in STAGES:
            raise FaultError(f"{text!r}: wants 'delay STAGE SECONDS' with STAGE one of "
                             + ", ".join(STAGES))
        return Fault(text, Delay(words[1].lower(), _seconds(words[2], "delay")))
    raise FaultError(f"{text!r}: unknown fault; rules start with mail, rcpt, data, "
                     "greylist, rate or delay")


def parse_faults(rules: str | Iterable[str]) -> list[Fault]:
    """Rules from a ';'-separated string or a list of strings."""
    items = rules.split(";") if isinstance(rules, str) else list(rules)
    faults = []
    for item in items:
        if not isinstance(item, str):
            raise FaultError(f"a fault rule must be text, not {item!r}")
        if item.strip():
            faults.append(parse_fault(item.strip()))
    return faults


# -- the state one server shares between its sessions ---------------------------------

def _peer_ip(peer: Any) -> str:
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return str(peer or "")


@dataclass
class SessionChaos:
    """What Jim decided for one SMTP session when it connected."""

    link_speed: float | None = None  # bytes per second, when throttled


@dataclass
class Chaos:
    """Jim (on or off) and the fault rules of one server, changeable at run time."""

    jim: Jim | None = None
    configured_jim: Jim = field(default_factory=Jim)  # what POST /api/v2/jim turns on
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self._greylist: dict[tuple[str, str, str], float] = {}
        self._sent: dict[str, collections.deque[float]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> "Chaos":
        jim = Jim.from_settings(settings)
        return cls(jim=jim if settings.invite_jim else None, configured_jim=jim,
                   faults=parse_faults(settings.faults or ""), seed=settings.chaos_seed)

    @property
    def active(self) -> bool:
        return self.jim is not None or bool(self.faults)

    def reseed(self, seed: int | None) -> None:
        """Start the random draws over (the same seed gives the same draws again)."""
        self.seed = seed
        self.random = random.Random(seed)

    def set_faults(self, faults: list[Fault]) -> None:
        self.faults = faults
        self._greylist.clear()
        self._sent.clear()

    def to_json(self) -> dict[str, Any]:
        return {"jim": self.jim.to_json() if self.jim else None,
                "faults": [fault.text for fault in self.faults], "seed": self.seed}

    # -- Jim's draws -------------------------------------------------------
    def _draw(self, chance: float) -> bool:
        return self.random.random() < chance

    def accept_connection(self) -> SessionChaos | None:
        """None: Jim refuses this connection. Otherwise this session's throttle."""
        jim = self.jim
        if jim is None:
            return SessionChaos()
        if self.random.random() > jim.accept:
            return None
        if self._draw(jim.linkspeed_affect):
            speed = jim.linkspeed_min + (jim.linkspeed_max - jim.linkspeed_min) * self.random.random()
            return SessionChaos(link_speed=max(speed, 1.0))
        return SessionChaos()

    def disconnect_now(self) -> bool:
        return self.jim is not None and self._draw(self.jim.disconnect)

    # -- replies instead of the normal ones ----------------------------------
    def _rules(self, kind: type) -> list:
        return [fault.rule for fault in self.faults if isinstance(fault.rule, kind)]

    def delay_for(self, stage: str) -> float:
        return sum(rule.seconds for rule in self._rules(Delay) if rule.stage == stage)

    def refuse_auth(self) -> str | None:
        if self.jim is not None and self._draw(self.jim.reject_auth):
            return "535 5.7.8 Authentication credentials invalid"
        return None

    def refuse_mail(self, peer: Any, address: str) -> str | None:
        if self.jim is not None and self._draw(self.jim.reject_sender):
            return f"550 5.1.8 Invalid sender {address}"
        for rule in self._rules(FixedReply):
            if rule.stage == "mail" and rule.matches(address):
                return rule.reply
        for limit in self._rules(RateLimit):
            sent = self._sent.setdefault(_peer_ip(peer), collections.deque())
            now = self.clock()
            while sent and now - sent[0] >= limit.period:
                sent.popleft()
            if len(sent) >= limit.messages:
                return (f"421 4.7.0 Rate limit: at most {limit.messages} messages in "
                        f"{limit.period:g} s, try again later")
            sent.append(now)
        return None

    def refuse_rcpt(self, peer: Any, mail_from: str, address: str) -> str | None:
        if self.jim is not None and self._draw(self.jim.reject_recipient):
            return f"550 5.1.1 Invalid recipient {address}"
        for rule in self._rules(FixedReply):
            if rule.stage == "rcpt" and rule.matches(address):
                return rule.reply
        for greylist in self._rules(Greylist):
            key = (_peer_ip(peer), (mail_from or "").lower(), address.lower())
            now = self.clock()
            first = self._greylist.get(key)
            if first is None:
                self._greylist[key] = now
            if first is None or now - first < greylist.retry_after:
                return "451 4.7.1 Greylisted, please try again later"
        return None

    def refuse_data(self, recipients: Iterable[str]) -> str | None:
        for rule in self._rules(FixedReply):
            if rule.stage == "data" and any(rule.matches(r) for r in recipients):
                return rule.reply
        return None


async def throttle(session: SessionChaos | None, size: int) -> None:
    """Jim's link speed: take as long as ``size`` bytes need at the session's rate."""
    if session is not None and session.link_speed:
        await asyncio.sleep(size / session.link_speed)


# -- the hook points SinkSMTP calls ------------------------------------------------

_STAGE_OF_COMMAND = {"HELO": "helo", "EHLO": "helo", "MAIL": "mail", "RCPT": "rcpt",
                     "DATA": "data"}


async def before_reply(chaos: Chaos, smtp: Any, command: str, args: tuple) -> Any:
    """Run before each handler hook; a reply (or EHLO's list) replaces the hook's.

    None lets the command go on as usual.
    """
    if chaos.disconnect_now():
        smtp.transport.abort()  # Jim kicks them off: no reply at all
        return [] if command == "EHLO" else "421 4.4.2 Connection dropped"
    reply = None
    if command == "AUTH":
        reply = chaos.refuse_auth()
    elif command == "MAIL":
        reply = chaos.refuse_mail(smtp.session.peer, args[0])
    elif command == "RCPT":
        reply = chaos.refuse_rcpt(smtp.session.peer, smtp.envelope.mail_from or "", args[0])
    elif command == "DATA":
        await throttle(getattr(smtp, "chaos_session", None),
                       len(smtp.envelope.original_content or b""))
        reply = chaos.refuse_data(smtp.envelope.rcpt_tos)
    stage = _STAGE_OF_COMMAND.get(command)
    if stage:
        delay = chaos.delay_for(stage)
        if delay:
            await asyncio.sleep(delay)
    if reply and reply.startswith("421"):
        # 421 means "closing": hang up once the reply is written.
        asyncio.get_running_loop().call_soon(smtp.transport.close)
    return reply
