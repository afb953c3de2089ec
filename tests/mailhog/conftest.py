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


def _exim_server_class():
    """The probe tests' Exim helper (tests/probe/probe_servers.py): one Exim fixture, reused."""
    try:
        from tests.probe.probe_servers import EximServer
    except ImportError:  # tests/probe is not a package: load the file by its path
        import importlib.util
        import pathlib
        path = pathlib.Path(__file__).resolve().parents[1] / "probe" / "probe_servers.py"
        spec = importlib.util.spec_from_file_location("mailsink_probe_servers", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        EximServer = module.EximServer
    return EximServer


@pytest.fixture(scope="module")
def exim():
    """Exim (Debian's exim4) on free loopback ports, as the probe tests run it."""
    import pathlib

    from tests.conftest import require_tool
    config = pathlib.Path(__file__).resolve().parents[1] / "probe" / "exim.conf"
    server = _exim_server_class()(require_tool("exim"), config)
    try:
        yield server
    finally:
        server.stop()
