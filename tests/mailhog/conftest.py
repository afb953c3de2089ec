"""Fixtures for the MailHog-compatibility tests: sending the reference messages."""
from __future__ import annotations

import smtplib

import pytest

from tests.mailhog.mailhog_helpers import reference


@pytest.fixture
def send():
    """send(sink, raw, mail_from, rcpt_tos, helo="client.example") over real SMTP."""
    def deliver(sink, raw: bytes, mail_from: str, rcpt_tos: list[str],
                helo: str = "client.example") -> None:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port, local_hostname=helo) as client:
            client.sendmail(mail_from, rcpt_tos, raw)
    return deliver


@pytest.fixture
def send_reference(send):
    """send_reference(sink, name): deliver a reference message with its envelope."""
    def deliver(sink, name: str) -> dict:
        raw, expected = reference(name)
        envelope = expected["envelope"]
        send(sink, raw, envelope["mail_from"], envelope["rcpt_tos"], envelope["helo"])
        return expected
    return deliver


@pytest.fixture
def api(sink):
    """An HTTP client on the sink's web port (one client: no TLS set-up per call)."""
    import httpx
    with httpx.Client(base_url=sink.http_url, timeout=10) as client:
        yield client
