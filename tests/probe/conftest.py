"""Fixtures for the probe's tests: a throw-away CA, aiosmtpd servers, scripted servers,
and Exim (Debian's exim4-daemon-light) on free loopback ports."""
from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

from probe_servers import AiosmtpdServer, EximServer, ScriptedServer, make_certs

# tests/conftest.py's require_tool (fails instead of skipping in CI). Loaded by path:
# every conftest.py is imported under the one name "conftest", so importing it by
# name could give this very file.
_spec = importlib.util.spec_from_file_location(
    "mailsink_tests_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
require_tool = _root.require_tool


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


@pytest.fixture(scope="module")
def exim():
    """One Exim daemon for a test module: plain/STARTTLS, implicit TLS and submission ports."""
    server = EximServer(require_tool("exim"), Path(__file__).with_name("exim.conf"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sink_ca(sink, tmp_path):
    """The ``sink`` fixture's generated CA certificate, as a file for ``ca_file``."""
    path = tmp_path / "sink-ca.pem"
    path.write_bytes(sink.ca_pem)
    return str(path)


@pytest.fixture
def loopback_465():
    """A loopback address whose port 465 is free (binding it needs root, as in CI)."""
    for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        with socket.socket() as sock:
            try:
                sock.bind((host, 465))
            except OSError:
                continue
        return host
    message = "no loopback address has port 465 free (binding it needs root)"
    if _root.IN_CI:
        pytest.fail(message)
    pytest.skip(message)
