"""probe: an SMTP probe and send client - swaks as a Python library.

    import probe
    info = probe.connect("mx.example.com:25")          # greeting, EHLO, TLS, timings
    msg = probe.Message("me@example.com", to=["you@example.com"], subject="hi", text="hello")
    result = probe.send(msg, "127.0.0.1:1025", tls="none")
    print(result.transcript)

``async_connect``/``async_send`` are the same for asyncio code. Failures raise a
``ProbeError`` subclass naming the stage (see ``probe.errors``). This package never
imports ``sink``.
"""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

from .auth import Auth
from .client import (PIPELINING_MODES, QUIT_AFTER, TLS_MODES, AnyMessage, async_connect,
                     async_send, split_server)
from .compose import Attachment, Message, RawMessage
from .errors import (AuthError, ConnectError, ProbeError, ProbeTimeout, ProtocolError,
                     RejectedError, TLSError, UsageError)
from .mx import DNSConfig, mail_targets
from .results import (Capabilities, Certificate, ConnectResult, RecipientResult, Reply,
                      SendResult, TLSInfo, Timings)
from .session import Timeouts
from .transcript import Transcript

T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise RuntimeError("probe.connect()/send() cannot run inside an event loop: "
                       "await probe.async_connect()/async_send() instead")


def connect(host: str, port: int | None = None, **options: Any) -> ConnectResult:
    """Synchronous ``async_connect``: same arguments, same result."""
    return _run(async_connect(host, port, **options))


def send(message: AnyMessage, server: str | None = None, port: int | None = None,
         **options: Any) -> SendResult:
    """Synchronous ``async_send``: same arguments, same result."""
    return _run(async_send(message, server, port, **options))


__all__ = [
    "connect", "send", "async_connect", "async_send", "split_server",
    "Message", "RawMessage", "Attachment", "Auth", "Timeouts", "DNSConfig", "mail_targets",
    "ConnectResult", "SendResult", "RecipientResult", "Reply", "Capabilities", "TLSInfo",
    "Certificate", "Timings", "Transcript",
    "ProbeError", "UsageError", "ConnectError", "ProbeTimeout", "TLSError", "AuthError",
    "RejectedError", "ProtocolError", "TLS_MODES", "PIPELINING_MODES", "QUIT_AFTER",
]
