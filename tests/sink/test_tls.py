"""TLS on the sink: STARTTLS, the implicit-TLS port, certificates and bad handshakes.

Every client verifies the server certificate against the sink's generated CA (or the
user's certificate), as an application configured for a real provider would.
"""
from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time

import aiosmtplib
import httpx
import pytest

from sink import Settings, Sink
from sink.settings import SettingsError
from tests.conftest import require_tool
from tests.sink.test_cli import run_cli
from tests.wire import Wire

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: over tls\r\n\r\nsecret\r\n"


def envelopes(sink: Sink) -> list[dict]:
    listed = httpx.get(f"{sink.http_url}/api/v3/messages").json()["messages"]
    return [httpx.get(f"{sink.http_url}/api/v3/messages/{m['id']}").json()["envelope"]
            for m in listed]


def only_envelope(sink: Sink) -> dict:
    found = envelopes(sink)
    assert len(found) == 1, found
    return found[0]


def assert_modern_tls(envelope: dict) -> None:
    assert envelope["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert envelope["tls_cipher"]


@pytest.fixture
def tls_sink():
    """A sink with STARTTLS (the default) and the implicit-TLS port on."""
    with Sink(smtps_port=0) as running:
        yield running


# -- STARTTLS and SMTPS with real clients -------------------------------------

def test_starttls_with_smtplib_verifies_the_certificate_and_is_recorded(tls_sink):
    with smtplib.SMTP(tls_sink.smtp_host, tls_sink.smtp_port) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=tls_sink.client_ssl_context())
        client.ehlo()
        assert not client.has_extn("starttls")  # not offered twice
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    envelope = only_envelope(tls_sink)
    assert_modern_tls(envelope)
    assert envelope["auth_user"] is None and envelope["auth_mechanism"] is None


def test_plaintext_message_has_no_tls_facts(sink):
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    envelope = only_envelope(sink)
    assert envelope["tls_version"] is None and envelope["tls_cipher"] is None


def test_implicit_tls_port_with_smtplib(tls_sink):
    assert tls_sink.smtps_port and tls_sink.smtps_port != tls_sink.smtp_port
    with smtplib.SMTP_SSL(tls_sink.smtp_host, tls_sink.smtps_port,
                          context=tls_sink.client_ssl_context()) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert_modern_tls(only_envelope(tls_sink))


def test_implicit_tls_port_is_off_by_default(sink):
    assert sink.smtps_port is None
    assert sink.server.smtps_port is None


def test_aiosmtplib_starttls_and_implicit_tls(tls_sink):
    async def send() -> None:
        context = tls_sink.client_ssl_context()
        await aiosmtplib.send(MESSAGE, sender="a@example.com", recipients=["b@example.com"],
                              hostname=tls_sink.smtp_host, port=tls_sink.smtp_port,
                              start_tls=True, tls_context=context)
        await aiosmtplib.send(MESSAGE, sender="a@example.com", recipients=["b@example.com"],
                              hostname=tls_sink.smtp_host, port=tls_sink.smtps_port,
                              use_tls=True, tls_context=context)
    asyncio.run(send())
    found = envelopes(tls_sink)
    assert len(found) == 2
    for envelope in found:
        assert_modern_tls(envelope)


def swaks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("swaks"), "--from", "a@example.com", "--to",
                           "b@example.com", "--header", "Subject: swaks tls", *args],
                          capture_output=True, text=True, timeout=30)


def test_swaks_starttls_and_tls_on_connect_verify_against_the_ca(tls_sink, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_sink.ca_pem)
    verify = ["--tls-verify", "--tls-ca-path", str(ca_file)]
    result = swaks("--server", f"127.0.0.1:{tls_sink.smtp_port}", "--tls", *verify)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started" in result.stdout
    result = swaks("--server", f"127.0.0.1:{tls_sink.smtps_port}", "--tls-on-connect", *verify)
    assert result.returncode == 0, result.stdout + result.stderr
    found = envelopes(tls_sink)
    assert len(found) == 2
    for envelope in found:
        assert_modern_tls(envelope)


def test_swaks_verification_fails_against_another_ca(tls_sink, tmp_path):
    # Proves swaks really verifies: a CA that did not sign the sink's certificate fails.
    other = tmp_path / "other.pem"
    other.write_bytes(ssl.get_server_certificate(("127.0.0.1", tls_sink.smtps_port)).encode())
    result = swaks("--server", f"127.0.0.1:{tls_sink.smtp_port}", "--tls", "--tls-verify",
                   "--tls-ca-path", str(other))
    assert result.returncode != 0
    assert envelopes(tls_sink) == []


# -- certificates --------------------------------------------------------------

def test_generated_certificate_verifies_for_every_name_and_nowhere_else(tls_sink):
    trusted = ssl.create_default_context(cadata=tls_sink.ca_pem.decode())
    for name in ("127.0.0.1", "localhost", tls_sink.settings.hostname):
        with Wire(tls_sink.smtp_host, tls_sink.smtp_port) as wire:
            wire.cmd("EHLO x")
            assert wire.starttls(trusted, server_hostname=name).startswith("220")
            assert wire.cmd("NOOP").startswith("250")
    with pytest.raises(ssl.SSLCertVerificationError):  # not a name the certificate holds
        with Wire(tls_sink.smtp_host, tls_sink.smtp_port) as wire:
            wire.starttls(trusted, server_hostname="example.com")
    with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs don't know it
        with Wire(tls_sink.smtp_host, tls_sink.smtps_port, tls=ssl.create_default_context()):
            pass


def test_ca_download_and_ca_out(tmp_path):
    path = tmp_path / "mailsink-ca.pem"
    with Sink(ca_out=str(path), smtps_port=0) as sink:
        response = httpx.get(f"{sink.http_url}/tls/ca.pem")
        assert response.status_code == 200
        assert response.content.startswith(b"-----BEGIN CERTIFICATE-----")
        assert response.content == path.read_bytes() == sink.ca_pem
        assert path.stat().st_mode & 0o777 == 0o644
        # A client that only has the downloaded file trusts the sink.
        context = ssl.create_default_context(cafile=str(path))
        with smtplib.SMTP_SSL("127.0.0.1", sink.smtps_port, context=context) as client:
            assert client.noop()[0] == 250


def test_ca_is_shared_by_the_sinks_of_one_process():
    # Generated once per process, so the second embedded sink starts without that cost
    # (bench/tls.py measures the start-up time).
    with Sink() as first, Sink() as second:
        assert second.ca_pem == first.ca_pem
        assert second.client_ssl_context() is not first.client_ssl_context()


def test_ca_pem_is_404_json_with_a_user_certificate(tmp_path):
    cert, key = make_self_signed(tmp_path)
    with Sink(tls_cert=str(cert), tls_key=str(key)) as sink:
        response = httpx.get(f"{sink.http_url}/tls/ca.pem")
        assert response.status_code == 404
        assert "tls-cert" in response.json()["error"]
        assert sink.ca_pem is None


def make_self_signed(directory) -> tuple:
    openssl = require_tool("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def test_user_certificate_and_key(tmp_path):
    cert, key = make_self_signed(tmp_path)
    with Sink(tls_cert=str(cert), tls_key=str(key), smtps_port=0) as sink:
        context = ssl.create_default_context(cafile=str(cert))
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            client.starttls(context=context)
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        with smtplib.SMTP_SSL("localhost", sink.smtps_port,
                              context=sink.client_ssl_context()) as client:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert len(envelopes(sink)) == 2
        served = ssl.get_server_certificate(("127.0.0.1", sink.smtps_port))
        assert served.strip() == cert.read_text().strip()


def test_user_certificate_with_the_key_in_the_same_file(tmp_path):
    cert, key = make_self_signed(tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_text(cert.read_text() + key.read_text())
    with Sink(tls_cert=str(combined), smtps_port=0) as sink:
        with smtplib.SMTP_SSL("127.0.0.1", sink.smtps_port,
                              context=ssl.create_default_context(cafile=str(cert))) as client:
            assert client.noop()[0] == 250


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_below_1_2_is_refused_and_1_2_works(tls_sink):
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with Wire(tls_sink.smtp_host, tls_sink.smtps_port, tls=old):
            pass
    assert tls_sink.server.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = tls_sink.client_ssl_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with smtplib.SMTP(tls_sink.smtp_host, tls_sink.smtp_port) as client:
        client.starttls(context=tls12)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    envelope = only_envelope(tls_sink)
    assert envelope["tls_version"] == "TLSv1.2"
    assert "GCM" in envelope["tls_cipher"] or "CHACHA20" in envelope["tls_cipher"]


# -- switches -------------------------------------------------------------------

def test_no_starttls_hides_and_refuses_it():
    with Sink(no_starttls=True) as sink:
        with Wire(sink.smtp_host, sink.smtp_port) as wire:
            assert "STARTTLS" not in wire.cmd("EHLO x")
            assert wire.cmd("STARTTLS").startswith("454 4.7.0")
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
        assert sink.server.tls is None


def test_require_tls_refuses_mail_before_starttls():
    with Sink(require_tls=True) as sink:
        with Wire(sink.smtp_host, sink.smtp_port) as wire:
            assert "STARTTLS" in wire.cmd("EHLO x")
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("530 5.7.0")
            assert wire.starttls(sink.client_ssl_context()).startswith("220")
            wire.cmd("EHLO x")
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert refused.value.smtp_code == 530


def test_require_tls_does_not_block_the_implicit_port():
    with Sink(require_tls=True, smtps_port=0) as sink:
        with smtplib.SMTP_SSL(sink.smtp_host, sink.smtps_port,
                              context=sink.client_ssl_context()) as client:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert_modern_tls(only_envelope(sink))


def test_settings_from_env_and_contradictions():
    settings = Settings.from_sources({}, {"MAILSINK_SMTPS_PORT": "0",
                                          "MAILSINK_NO_STARTTLS": "true",
                                          "MAILSINK_REQUIRE_TLS": "no"})
    assert settings.smtps_port == 0 and settings.no_starttls and not settings.require_tls
    assert Settings.from_sources({}, {"MAILSINK_SMTPS_PORT": "off"}).smtps_port is None
    with pytest.raises(SettingsError, match="no-starttls"):
        Sink(require_tls=True, no_starttls=True)
    with pytest.raises(SettingsError, match="tls-cert"):
        Sink(tls_key="/nonexistent/key.pem")


@pytest.mark.parametrize("args, expected, code", [
    (["--require-tls", "--no-starttls"], "--no-starttls", 2),
    (["--tls-cert", "/nonexistent/cert.pem"], "/nonexistent/cert.pem", 2),
    (["--ca-out", "/nonexistent/dir/ca.pem"], "/nonexistent/dir/ca.pem", 1),
])
def test_cli_tls_errors_are_one_line(args, expected, code):
    result = run_cli("serve", "--smtp-port", "0", "--http-port", "0", *args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_certificate_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    result = run_cli("serve", "--smtp-port", "0", "--http-port", "0", "--tls-cert", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.pem" in result.stderr


# -- bad input: each gets a clear reply or a closed connection; others unaffected

def assert_serves_others(sink: Sink) -> None:
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.starttls(context=sink.client_ssl_context())
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    with smtplib.SMTP_SSL(sink.smtp_host, sink.smtps_port,
                          context=sink.client_ssl_context()) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def quiet(caplog) -> list[str]:
    """Log records at WARNING or above (tracebacks would be ERROR)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_garbage_after_starttls_closes_that_connection_only(tls_sink, caplog):
    caplog.set_level(logging.INFO)
    with Wire(tls_sink.smtp_host, tls_sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        assert wire.cmd("STARTTLS").startswith("220 2.0.0")
        wire.send(b"EHLO this is not a ClientHello\r\n" * 20)
        assert wire.closed_by_server()
    assert_serves_others(tls_sink)
    assert quiet(caplog) == []
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


def test_garbage_on_the_implicit_port_closes_that_connection_only(tls_sink, caplog):
    caplog.set_level(logging.INFO)
    with socket.create_connection((tls_sink.smtp_host, tls_sink.smtps_port), timeout=10) as raw:
        raw.sendall(b"EHLO plaintext on the TLS port\r\n" * 20)
        assert raw.recv(100) == b""  # closed, no SMTP greeting
    with socket.create_connection((tls_sink.smtp_host, tls_sink.smtps_port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x40" + bytes(range(64)))  # a record, not a ClientHello
        received = b""
        while chunk := raw.recv(100):  # perhaps a TLS alert, then the close
            received += chunk
        assert b"220" not in received
    assert_serves_others(tls_sink)
    assert quiet(caplog) == []


def test_client_that_fails_certificate_verification_does_not_affect_others(tls_sink, caplog):
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(tls_sink.smtp_host, tls_sink.smtps_port,
                         context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        with smtplib.SMTP(tls_sink.smtp_host, tls_sink.smtp_port) as client:
            client.starttls(context=ssl.create_default_context())
    assert_serves_others(tls_sink)
    assert quiet(caplog) == []


def test_starttls_twice_and_on_the_implicit_port(tls_sink):
    with Wire(tls_sink.smtp_host, tls_sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        assert wire.starttls(tls_sink.client_ssl_context()).startswith("220")
        assert wire.cmd("STARTTLS").startswith("503 5.5.1")
        assert wire.cmd("EHLO x").startswith("250")
        assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
    with Wire(tls_sink.smtp_host, tls_sink.smtps_port, tls=tls_sink.client_ssl_context()) as w:
        w.cmd("EHLO x")
        assert w.cmd("STARTTLS").startswith("503 5.5.1")
        assert w.cmd("NOOP").startswith("250")


def test_starttls_with_an_argument(tls_sink):
    with Wire(tls_sink.smtp_host, tls_sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        assert wire.cmd("STARTTLS now").startswith("501 5.5.4")
        assert wire.cmd("NOOP").startswith("250")


def test_silent_client_mid_handshake_frees_its_connection_slot():
    # STARTTLS and then nothing: the idle timeout closes it, and the slot it held is
    # given back (a leak here would let a few such clients lock everyone out).
    with Sink(max_connections=1, idle_timeout=0.5, smtps_port=0) as sink:
        for _ in range(3):
            with Wire(sink.smtp_host, sink.smtp_port) as wire:
                assert wire.cmd("STARTTLS").startswith("220")
                assert wire.closed_by_server()
            deadline = time.monotonic() + 5
            while sink.server.tracker.sessions and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not sink.server.tracker.sessions
        with socket.create_connection((sink.smtp_host, sink.smtps_port), timeout=10) as raw:
            assert raw.recv(100) == b""  # the handshake timeout closes a silent TLS client
        with Wire(sink.smtp_host, sink.smtp_port) as wire:
            assert wire.greeting.startswith("220")


def test_slow_handshake_does_not_block_other_sessions(tls_sink):
    # One client opens the TLS port and stalls mid-handshake; others are served meanwhile.
    stalled = socket.create_connection((tls_sink.smtp_host, tls_sink.smtps_port), timeout=10)
    stalled.sendall(b"\x16\x03\x01")  # the first bytes of a TLS record, then nothing
    try:
        done = threading.Event()

        def others() -> None:
            assert_serves_others(tls_sink)
            done.set()
        worker = threading.Thread(target=others)
        worker.start()
        worker.join(timeout=30)
        assert done.is_set()
    finally:
        stalled.close()


def test_unchanged_app_with_default_verification_trusts_the_ca_via_ssl_cert_file(tmp_path):
    # What the README tells Django users: the app keeps ssl.create_default_context()
    # and its process gets SSL_CERT_FILE pointing at the file --ca-out wrote.
    ca_file = tmp_path / "mailsink-ca.pem"
    app = (
        "import smtplib, ssl, sys\n"
        "with smtplib.SMTP('localhost', int(sys.argv[1])) as c:\n"
        "    c.starttls(context=ssl.create_default_context())\n"
        "    c.login('app', 'app-password')\n"
        "    c.sendmail('a@example.com', ['b@example.com'], b'Subject: app\\r\\n\\r\\nx\\r\\n')\n"
    )
    with Sink(ca_out=str(ca_file), auth="any") as sink:
        result = subprocess.run([sys.executable, "-c", app, str(sink.smtp_port)],
                                env={**os.environ, "SSL_CERT_FILE": str(ca_file)},
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        without = subprocess.run([sys.executable, "-c", app, str(sink.smtp_port)],
                                 env={k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"},
                                 capture_output=True, text=True, timeout=30)
        assert "CERTIFICATE_VERIFY_FAILED" in without.stderr
        [envelope] = envelopes(sink)
        assert envelope["auth_user"] == "app" and envelope["tls_version"]
