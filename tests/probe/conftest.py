"""Fixtures for the probe's tests: a throw-away CA, aiosmtpd servers, scripted servers."""
from __future__ import annotations

import pytest

from probe_servers import AiosmtpdServer, ScriptedServer, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA and a localhost/127.0.0.1 certificate it signed."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def smtpd(certs):
    """``smtpd(tls=..., auth=...)`` starts an aiosmtpd server; all are stopped after the test."""
    started = []

    def start(**options):
        server = AiosmtpdServer(certs, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def scripted():
    """``scripted(script)`` starts a raw server running ``script(reader, writer)``."""
    started = []

    def start(script):
        server = ScriptedServer(script)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
