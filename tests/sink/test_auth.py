"""SMTP AUTH on the sink: the modes, PLAIN/LOGIN/CRAM-MD5 with real clients, the
credentials file, the slow-down after failures, and malformed exchanges."""
from __future__ import annotations

import asyncio
import base64
import hmac
import os
import smtplib
import subprocess
import threading
import time

import aiosmtplib
import bcrypt
import httpx
import pytest

from sink import Sink
from sink.settings import SettingsError
from sink.smtp.auth import FailureThrottle, parse_credentials
from tests.conftest import require_tool
from tests.sink.test_cli import run_cli
from tests.wire import Wire

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: authed\r\n\r\nhi\r\n"
UTF8_USER, UTF8_PASSWORD = "jürgen@bücher.example", "pässwörd ✓"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def envelopes(sink: Sink) -> list[dict]:
    listed = httpx.get(f"{sink.http_url}/api/v3/messages").json()["messages"]
    return [httpx.get(f"{sink.http_url}/api/v3/messages/{m['id']}").json()["envelope"]
            for m in reversed(listed)]  # oldest first


@pytest.fixture
def credentials(tmp_path):
    path = tmp_path / "users"
    hashed = bcrypt.hashpw(b"hashed-secret", bcrypt.gensalt(rounds=4)).decode()
    path.write_text("# mailsink users\n"
                    "alice:plain-secret\n"
                    f"bob:{hashed}\n"
                    "colon:pass:with:colons\n"
                    f"{UTF8_USER}:{UTF8_PASSWORD}\n", encoding="utf-8")
    return path


@pytest.fixture
def file_sink(credentials):
    with Sink(auth="file", auth_file=str(credentials), smtps_port=0) as running:
        yield running


@pytest.fixture
def any_sink():
    with Sink(auth="any", smtps_port=0) as running:
        yield running


def tls_wire(sink: Sink) -> Wire:
    """A raw session that has done EHLO, STARTTLS (verified) and EHLO again."""
    wire = Wire(sink.smtp_host, sink.smtp_port)
    wire.cmd("EHLO client.example")
    assert wire.starttls(sink.client_ssl_context()).startswith("220")
    assert wire.cmd("EHLO client.example").startswith("250")
    return wire


def smtplib_login(sink: Sink, mechanism: str, user: str, password: str,
                  initial_response: bool = True) -> None:
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.starttls(context=sink.client_ssl_context())
        client.ehlo()
        client.user, client.password = user, password
        authobject = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login,
                      "CRAM-MD5": client.auth_cram_md5}[mechanism]
        client.auth(mechanism, authobject, initial_response_ok=initial_response)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


# -- modes ----------------------------------------------------------------------

def test_auth_is_off_by_default(sink):
    with tls_wire(sink) as wire:
        assert "AUTH" not in wire.cmd("EHLO again")
        assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'a' + chr(0) + 'b')}").startswith("502 5.5.1")
        assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize("initial_response", [True, False])
def test_any_mode_accepts_any_credentials_with_smtplib(any_sink, mechanism, initial_response):
    smtplib_login(any_sink, mechanism, "whoever", "whatever", initial_response)
    [envelope] = envelopes(any_sink)
    assert envelope["auth_user"] == "whoever"
    assert envelope["auth_mechanism"] == mechanism
    assert envelope["tls_version"] in ("TLSv1.2", "TLSv1.3")


def test_auth_is_offered_only_after_tls(any_sink):
    with Wire(any_sink.smtp_host, any_sink.smtp_port) as wire:
        ehlo = wire.cmd("EHLO x")
        assert "STARTTLS" in ehlo and "AUTH" not in ehlo
        assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'u' + chr(0) + 'p')}").startswith("538 5.7.11")
        assert wire.starttls(any_sink.client_ssl_context()).startswith("220")
        assert "250-AUTH CRAM-MD5 LOGIN PLAIN" in wire.cmd("EHLO x")
    with Wire(any_sink.smtp_host, any_sink.smtps_port,
              tls=any_sink.client_ssl_context()) as wire:
        assert "250-AUTH CRAM-MD5 LOGIN PLAIN" in wire.cmd("EHLO x")
        assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'u' + chr(0) + 'p')}").startswith("235 2.7.0")


def test_auth_allow_insecure_offers_it_on_plaintext():
    with Sink(auth="any", auth_allow_insecure=True, no_starttls=True) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            client.login("plain", "text")
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        [envelope] = envelopes(sink)
        assert envelope["auth_user"] == "plain" and envelope["tls_version"] is None


def test_require_auth_refuses_mail_before_auth(credentials):
    with Sink(auth="file", auth_file=str(credentials), require_auth=True) as sink:
        with tls_wire(sink) as wire:
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("530 5.7.0")
            assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'wrong')}") \
                .startswith("535 5.7.8")
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("530 5.7.0")
            assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'plain-secret')}") \
                .startswith("235 2.7.0")
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
                client.starttls(context=sink.client_ssl_context())
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert refused.value.smtp_code == 530


# -- the credentials file -----------------------------------------------------

@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_file_mode_plain_entries(file_sink, mechanism):
    smtplib_login(file_sink, mechanism, "alice", "plain-secret")
    smtplib_login(file_sink, mechanism, "colon", "pass:with:colons")
    assert [(e["auth_user"], e["auth_mechanism"]) for e in envelopes(file_sink)] == \
        [("alice", mechanism), ("colon", mechanism)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_file_mode_bcrypt_entry(file_sink, mechanism):
    smtplib_login(file_sink, mechanism, "bob", "hashed-secret")
    assert envelopes(file_sink)[0]["auth_user"] == "bob"


@pytest.mark.parametrize("mechanism, user, password", [
    ("PLAIN", "alice", "wrong"),
    ("LOGIN", "alice", "PLAIN-SECRET"),
    ("CRAM-MD5", "alice", "wrong"),
    ("PLAIN", "nobody", "plain-secret"),
    ("PLAIN", "bob", "wrong"),
    ("CRAM-MD5", "bob", "hashed-secret"),  # CRAM-MD5 cannot check a bcrypt entry
])
def test_file_mode_wrong_credentials_get_535(file_sink, mechanism, user, password):
    with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
        smtplib_login(file_sink, mechanism, user, password)
    assert failed.value.smtp_code == 535
    assert failed.value.smtp_error.startswith(b"5.7.8")
    assert envelopes(file_sink) == []


def test_plain_authzid_must_match_in_file_mode(file_sink):
    with tls_wire(file_sink) as wire:
        reply = wire.cmd(f"AUTH PLAIN {b64('bob' + chr(0) + 'alice' + chr(0) + 'plain-secret')}")
        assert reply.startswith("535 5.7.8")
        reply = wire.cmd(f"AUTH PLAIN {b64('alice' + chr(0) + 'alice' + chr(0) + 'plain-secret')}")
        assert reply.startswith("235 2.7.0")


def test_utf8_credentials_with_aiosmtplib(file_sink):
    async def send(mechanism: str) -> None:
        client = aiosmtplib.SMTP(hostname=file_sink.smtp_host, port=file_sink.smtp_port,
                                 start_tls=True, tls_context=file_sink.client_ssl_context())
        async with client:
            await client.ehlo()  # STARTTLS forgot the first EHLO (RFC 3207)
            login = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login,
                     "CRAM-MD5": client.auth_crammd5}[mechanism]
            await login(UTF8_USER, UTF8_PASSWORD)
            await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)

    for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
        asyncio.run(send(mechanism))
    assert [(e["auth_user"], e["auth_mechanism"]) for e in envelopes(file_sink)] == \
        [(UTF8_USER, "PLAIN"), (UTF8_USER, "LOGIN"), (UTF8_USER, "CRAM-MD5")]


def test_aiosmtplib_login_on_the_implicit_port(file_sink):
    async def send() -> None:
        await aiosmtplib.send(MESSAGE, sender="a@example.com", recipients=["b@example.com"],
                              hostname=file_sink.smtp_host, port=file_sink.smtps_port,
                              use_tls=True, tls_context=file_sink.client_ssl_context(),
                              username="bob", password="hashed-secret")
    asyncio.run(send())
    [envelope] = envelopes(file_sink)
    assert envelope["auth_user"] == "bob" and envelope["tls_version"]


def swaks(sink: Sink, tmp_path, *args: str) -> subprocess.CompletedProcess:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(sink.ca_pem)
    return subprocess.run(
        [require_tool("swaks"), "--from", "a@example.com", "--to", "b@example.com",
         "--tls-verify", "--tls-ca-path", str(ca_file), *args],
        capture_output=True, timeout=30)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_auth_over_starttls(file_sink, tmp_path, mechanism):
    result = swaks(file_sink, tmp_path, "--server", f"127.0.0.1:{file_sink.smtp_port}", "--tls",
                   "--auth", mechanism, "--auth-user", "alice", "--auth-password", "plain-secret")
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    [envelope] = envelopes(file_sink)
    assert (envelope["auth_user"], envelope["auth_mechanism"]) == ("alice", mechanism)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_auth_over_tls_on_connect_with_utf8(file_sink, tmp_path, mechanism):
    result = swaks(file_sink, tmp_path, "--server", f"127.0.0.1:{file_sink.smtps_port}",
                   "--tls-on-connect", "--auth", mechanism,
                   "--auth-user", UTF8_USER, "--auth-password", UTF8_PASSWORD)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    [envelope] = envelopes(file_sink)
    assert (envelope["auth_user"], envelope["auth_mechanism"]) == (UTF8_USER, mechanism)


def test_swaks_wrong_password_fails(file_sink, tmp_path):
    result = swaks(file_sink, tmp_path, "--server", f"127.0.0.1:{file_sink.smtp_port}", "--tls",
                   "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "nope")
    assert result.returncode != 0
    assert b"535 5.7.8" in result.stdout
    assert envelopes(file_sink) == []


def test_credentials_file_is_reread_when_it_changes(file_sink, credentials):
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtplib_login(file_sink, "PLAIN", "dave", "new-secret")
    credentials.write_text(credentials.read_text() + "dave:new-secret\n", encoding="utf-8")
    stat = credentials.stat()
    os.utime(credentials, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    smtplib_login(file_sink, "PLAIN", "dave", "new-secret")
    # A broken edit keeps the last good credentials (and logs a warning).
    credentials.write_text("this line has no colon\n", encoding="utf-8")
    os.utime(credentials, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    smtplib_login(file_sink, "PLAIN", "dave", "new-secret")
    assert len(envelopes(file_sink)) == 2


def test_parse_credentials():
    entries = parse_credentials("# c\n\nu:p\nv:$2b$04$abcdefghijklmnopqrstuu\nw:\n", "f")
    assert entries["u"].secret == "p" and not entries["u"].hashed
    assert entries["v"].hashed
    assert entries["w"].secret == ""
    with pytest.raises(SettingsError, match="f:2"):
        parse_credentials("ok:1\nbroken\n", "f")
    with pytest.raises(SettingsError, match="bcrypt"):
        parse_credentials("u:$apr1$salt$hash\n", "f")


@pytest.mark.parametrize("options, expected", [
    ({"auth": "file"}, "--auth-file"),
    ({"auth": "file", "auth_file": "/nonexistent/users"}, "/nonexistent/users"),
    ({"require_auth": True}, "--require-auth"),
    ({"auth_file": "/tmp/users"}, "--auth file"),
    ({"auth": "any", "no_starttls": True}, "TLS"),
])
def test_contradictory_auth_settings(options, expected):
    with pytest.raises(SettingsError, match=expected):
        Sink(**options)


def test_auth_any_without_starttls_but_with_smtps_is_fine():
    with Sink(auth="any", no_starttls=True, smtps_port=0) as sink:
        with smtplib.SMTP_SSL(sink.smtp_host, sink.smtps_port,
                              context=sink.client_ssl_context()) as client:
            client.login("u", "p")


def test_cli_auth_errors_are_one_line(tmp_path):
    result = run_cli("serve", "--smtp-port", "0", "--http-port", "0", "--auth", "file",
                     "--auth-file", str(tmp_path / "missing"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "missing" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("serve", "--auth", "maybe")
    assert result.returncode == 2 and "off, any, file" in result.stderr


def test_cli_env_configures_auth(credentials):
    from tests.sink.test_cli import Served
    served = Served("--smtp-port", "0", "--http-port", "0",
                    env={"MAILSINK_AUTH": "file", "MAILSINK_AUTH_FILE": str(credentials),
                         "MAILSINK_REQUIRE_AUTH": "1", "MAILSINK_AUTH_ALLOW_INSECURE": "yes"})
    try:
        with Wire("127.0.0.1", served.smtp_port) as wire:
            assert "AUTH CRAM-MD5 LOGIN PLAIN" in wire.cmd("EHLO x")
            assert wire.cmd("MAIL FROM:<a@example.com>").startswith("530 5.7.0")
            assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'plain-secret')}") \
                .startswith("235")
    finally:
        served.stop()


# -- bad input ----------------------------------------------------------------

def test_malformed_auth_exchanges_get_clear_replies_and_the_session_survives(file_sink):
    with tls_wire(file_sink) as wire:
        assert wire.cmd("AUTH PLAIN !!!not-base64!!!").startswith("501 5.5.2")
        assert wire.cmd("AUTH FOO").startswith("504 5.5.4")
        assert wire.cmd("AUTH").startswith("501 5.5.4")
        assert wire.cmd("AUTH PLAIN a b").startswith("501 5.5.4")
        assert wire.cmd(f"AUTH PLAIN {b64('no nul bytes')}").startswith("501 5.5.2")
        not_utf8 = b64(b"\0alice\0\xff\xfe")
        assert wire.cmd("AUTH PLAIN " + not_utf8).startswith("501 5.5.2")
        assert wire.cmd("AUTH PLAIN").startswith("334 ")
        assert wire.cmd("%%%").startswith("501 5.5.2")
        assert wire.cmd("AUTH LOGIN").startswith("334 " + b64("Username:"))
        assert wire.cmd("*").startswith("501 5.7.0")
        assert wire.cmd(f"AUTH LOGIN {b64('alice')}").startswith("334 " + b64("Password:"))
        assert wire.cmd("not base64 either").startswith("501 5.5.2")
        assert wire.cmd("AUTH CRAM-MD5 initial").startswith("501 5.5.4")
        assert wire.cmd("AUTH CRAM-MD5").startswith("334 ")
        assert wire.cmd(b64("just-one-word")).startswith("501 5.5.2")
        assert wire.cmd("AUTH PLAIN").startswith("334 ")
        assert wire.cmd("A" * 3000).startswith("500 5.5.2")  # an absurdly long answer
        # After all that, the same session still logs in and sends.
        assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'plain-secret')}") \
            .startswith("235 2.7.0")
        assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'plain-secret')}") \
            .startswith("503 5.5.1")  # already authenticated
        assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
        assert wire.cmd("RCPT TO:<b@example.com>").startswith("250")
        assert wire.cmd("DATA").startswith("354")
        wire.send(MESSAGE + b".\r\n")
        assert wire.reply().startswith("250")
    [envelope] = envelopes(file_sink)
    assert envelope["auth_user"] == "alice" and envelope["auth_mechanism"] == "PLAIN"


def test_auth_inside_a_transaction_and_before_ehlo(any_sink):
    with Wire(any_sink.smtp_host, any_sink.smtps_port, tls=any_sink.client_ssl_context()) as w:
        assert w.cmd("AUTH PLAIN").startswith("503 5.5.1")  # EHLO first
        w.cmd("HELO x")
        assert w.cmd("AUTH PLAIN").startswith("503 5.5.1")  # HELO has no extensions
        w.cmd("EHLO x")
        w.cmd("MAIL FROM:<a@example.com>")
        assert w.cmd(f"AUTH PLAIN {b64(chr(0) + 'u' + chr(0) + 'p')}").startswith("503 5.5.1")
        w.cmd("RSET")
        assert w.cmd(f"AUTH PLAIN {b64(chr(0) + 'u' + chr(0) + 'p')}").startswith("235")


def test_empty_initial_response_is_an_empty_plain_message(any_sink):
    with tls_wire(any_sink) as wire:
        assert wire.cmd("AUTH PLAIN =").startswith("501 5.5.2")  # "" is not authzid\0user\0pw
        assert wire.cmd("AUTH LOGIN =").startswith("334 ")       # an empty user name
        assert wire.cmd(b64("pw")).startswith("235")


def test_auth_resets_after_starttls(any_sink):
    with Sink(auth="any", auth_allow_insecure=True) as sink:
        with Wire(sink.smtp_host, sink.smtp_port) as wire:
            wire.cmd("EHLO x")
            assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'u' + chr(0) + 'p')}").startswith("235")
            assert wire.starttls(sink.client_ssl_context()).startswith("220")
            wire.cmd("EHLO x")
            # RFC 3207: everything learned before TLS is forgotten, AUTH included.
            assert wire.cmd(f"AUTH PLAIN {b64(chr(0) + 'v' + chr(0) + 'p')}").startswith("235")


# -- the slow-down --------------------------------------------------------------

def test_failure_throttle_doubles_and_forgets():
    throttle = FailureThrottle(free=2, first_delay=0.5, max_delay=2.0, window=60)
    assert [throttle.failed("10.0.0.1") for _ in range(6)] == [0, 0, 0.5, 1.0, 2.0, 2.0]
    assert throttle.failed("10.0.0.2") == 0  # per client IP
    throttle.succeeded("10.0.0.1")
    assert throttle.failed("10.0.0.1") == 0
    expired = FailureThrottle(free=0, first_delay=1, window=0)
    expired.failed("10.0.0.3")
    time.sleep(0.01)
    assert expired.failed("10.0.0.3") == 1  # the window passed: counted as a first failure


def test_repeated_failures_are_slowed_down_without_blocking_others(file_sink):
    # A stricter throttle on this sink: the second failure from an IP waits 2 s.
    file_sink.server.authenticator.throttle = FailureThrottle(free=1, first_delay=2.0)
    wrong = f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'wrong')}"
    attacker = tls_wire(file_sink)
    assert attacker.cmd(wrong).startswith("535 5.7.8")  # free
    replies: list[str] = []
    started = time.monotonic()
    slowed = threading.Thread(target=lambda: replies.append(attacker.cmd(wrong)))
    slowed.start()
    try:
        # Meanwhile another client (another loopback address, so another IP) fails
        # once and then logs in and sends, while the attacker's reply is still held.
        with smtplib.SMTP(file_sink.smtp_host, file_sink.smtp_port,
                          source_address=("127.0.0.2", 0)) as client:
            client.starttls(context=file_sink.client_ssl_context())
            client.ehlo()
            client.user, client.password = "alice", "typo"
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.auth("PLAIN", client.auth_plain)  # one try (login() tries them all)
            client.user, client.password = "alice", "plain-secret"
            client.auth("PLAIN", client.auth_plain)
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert replies == []  # still waiting: the slow-down is per IP and never blocks
    finally:
        slowed.join(timeout=30)
        attacker.close()
    assert replies and replies[0].startswith("535 5.7.8")
    assert time.monotonic() - started >= 2.0
    [envelope] = envelopes(file_sink)
    assert envelope["auth_user"] == "alice" and envelope["peer"].startswith("127.0.0.2:")


def test_cram_md5_digest_is_checked(file_sink):
    with tls_wire(file_sink) as wire:
        challenge = base64.b64decode(wire.cmd("AUTH CRAM-MD5")[4:])
        assert challenge.startswith(b"<") and challenge.endswith(b"@mailsink.local>")
        digest = hmac.new(b"plain-secret", challenge, "md5").hexdigest()
        assert wire.cmd(b64(f"alice {digest}")).startswith("235 2.7.0")
    with tls_wire(file_sink) as wire:
        challenge = base64.b64decode(wire.cmd("AUTH CRAM-MD5")[4:])
        stale = hmac.new(b"plain-secret", b"<1.1@other>", "md5").hexdigest()
        assert wire.cmd(b64(f"alice {stale}")).startswith("535 5.7.8")
