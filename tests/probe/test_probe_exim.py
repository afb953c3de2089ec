"""The probe against a real MTA: Exim from Debian's packages, started on loopback."""
from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

import probe

USER, PASSWORD = "testuser", "testpass"


def no_secrets(text: str) -> None:
    assert PASSWORD not in text
    assert base64.b64encode(PASSWORD.encode()).decode() not in text
    assert base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode() not in text


def message(to: list[str], **fields) -> probe.Message:
    return probe.Message(sender="probe@example.org", to=to,
                         subject=fields.pop("subject", "exim test"),
                         text=fields.pop("text", "Hello Exim.\n.a dotted line\n"), **fields)


def arrived(exim, localpart: str, sent: probe.Message) -> None:
    """The file in the mailbox is what was sent (Exim stores LF line endings)."""
    wire = sent.to_bytes()
    stored = exim.find(localpart, sent.message_id.encode())
    assert stored is not None, exim.logs()
    assert stored == wire.replace(b"\r\n", b"\n")


def test_connect_plain_then_starttls(exim):
    plain = probe.connect(exim.host, exim.plain_port, tls="none")
    assert "ESMTP Exim" in plain.greeting.raw
    assert plain.capabilities.has("STARTTLS") and plain.capabilities.has("PIPELINING")
    assert plain.capabilities.auth == []          # AUTH only inside TLS
    secure = probe.connect(exim.host, exim.plain_port, ca_file=str(exim.certs.ca))
    assert secure.tls.mode == "starttls" and secure.tls.verified
    assert secure.capabilities.auth == ["PLAIN", "LOGIN", "CRAM-MD5"]


def test_plain_send_arrives_byte_for_byte(exim):
    sent = message(["alice@test.example"], text=".\n..\n.dot\nend\n")
    result = probe.send(sent, exim.host, exim.plain_port, tls="none")
    assert result.delivered and result.pipelined and result.queue_id
    arrived(exim, "alice", sent)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_starttls_and_auth(exim, mechanism):
    sent = message(["bob@test.example"], subject=f"auth {mechanism}",
                   cc=["Ünïcode Name <testuser@test.example>"])
    result = probe.send(sent, exim.host, exim.plain_port, tls="starttls",
                        ca_file=str(exim.certs.ca), auth=probe.Auth(USER, PASSWORD, mechanism))
    assert result.authenticated and result.auth_mechanism == mechanism
    assert result.tls.verified
    no_secrets(str(result.transcript))
    arrived(exim, "bob", sent)


def test_implicit_tls(exim):
    sent = message(["alice@test.example"], subject="implicit")
    result = probe.send(sent, exim.host, exim.smtps_port, tls="implicit",
                        ca_file=str(exim.certs.ca), auth=probe.Auth(USER, PASSWORD, "PLAIN"))
    assert result.delivered and result.tls.mode == "implicit"
    arrived(exim, "alice", sent)


def test_rejected_recipient(exim):
    sent = message(["testuser@test.example", "nobody@test.example", "x@elsewhere.example"])
    result = probe.send(sent, exim.host, exim.plain_port, tls="none")
    assert result.accepted == ["testuser@test.example"]
    replies = {r.address: r.reply for r in result.rejected}
    assert replies["nobody@test.example"].code == 550
    assert replies["nobody@test.example"].enhanced_code == "5.1.1"
    assert "relay not permitted" in replies["x@elsewhere.example"].text
    arrived(exim, "testuser", sent)


def test_auth_required(exim):
    sent = message(["alice@test.example"], subject="submission")
    with pytest.raises(probe.RejectedError) as caught:
        probe.send(sent, exim.host, exim.sub_port, ca_file=str(exim.certs.ca))
    error = caught.value
    assert (error.stage, error.code, error.enhanced_code) == ("mail", 530, "5.7.0")
    assert error.message == "MAIL FROM failed: 530 5.7.0 Authentication required"
    with pytest.raises(probe.AuthError, match="before STARTTLS"):
        probe.send(sent, exim.host, exim.sub_port, tls="none", auth=probe.Auth(USER, PASSWORD))
    with pytest.raises(probe.AuthError) as wrong:
        probe.send(sent, exim.host, exim.sub_port, ca_file=str(exim.certs.ca),
                   auth=probe.Auth(USER, "wrong"))
    assert wrong.value.code == 535
    ok = probe.send(sent, exim.host, exim.sub_port, ca_file=str(exim.certs.ca),
                    auth=probe.Auth(USER, PASSWORD))
    assert ok.delivered
    arrived(exim, "alice", sent)


def test_cli_send_with_password_from_env_redacts_the_transcript(exim, tmp_path):
    attachment = tmp_path / "report.csv"
    attachment.write_text("a,b\n1,2\n")
    env = dict(os.environ, PROBE_PW=PASSWORD)
    run = subprocess.run(
        [sys.executable, "-m", "probe", "send", "--server", f"{exim.host}:{exim.sub_port}",
         "--from", "cli@example.org", "--to", "bob@test.example", "--subject", "from the CLI",
         "--body", "cli body", "--attach", str(attachment), "--header", "X-Via: cli",
         "--auth-user", USER, "--auth-mech", "LOGIN", "--auth-password-env", "PROBE_PW",
         "--ca-file", str(exim.certs.ca), "--transcript"],
        capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    no_secrets(run.stdout + run.stderr)
    assert " ~> AUTH LOGIN" in run.stdout and "Delivered to" in run.stdout
    stored = exim.mailbox("bob", 1)
    assert any(b"X-Via: cli" in m and b"report.csv" in m for m in stored), exim.logs()
