"""``mailsink probe``, ``mailsink send`` and ``mailsink sendmail`` as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from probe_servers import PASSWORD, USER


def mailsink(*args: str, stdin: bytes | None = None, env: dict | None = None):
    """Run the real ``mailsink`` command line (python -m sink) in a subprocess."""
    return subprocess.run([sys.executable, "-m", "sink", *args], input=stdin,
                          capture_output=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_probe_report_and_json(smtpd, certs):
    server = smtpd(tls="starttls")
    run = mailsink("probe", server.address, "--ca-file", str(certs.ca))
    out = run.stdout.decode()
    assert run.returncode == 0, run.stderr
    assert "Greeting     220 test.local" in out and "SIZE" in out and "33554432" in out
    assert "TLS          starttls: TLSv1.3" in out and "verified           yes" in out
    assert "Timings (ms) connect" in out
    run = mailsink("probe", server.address, "--ca-file", str(certs.ca), "--json")
    data = json.loads(run.stdout)
    assert data["capabilities"]["SIZE"] == 33554432 and data["tls"]["verified"] is True


def test_probe_exit_codes(smtpd, scripted):
    tls_server = smtpd(tls="starttls")
    run = mailsink("probe", tls_server.address)     # self-signed: reported, exit 4
    assert run.returncode == 4
    assert b"verified           NO: unable to get local issuer" in run.stdout
    assert run.stderr.decode().startswith("mailsink probe: TLS certificate verification failed")
    plain = smtpd()
    assert mailsink("probe", plain.address, "--tls", "starttls").returncode == 4
    closed = scripted(lambda reader, writer: writer.drain())   # hangs up at once
    run = mailsink("probe", closed.address, "--tls", "none")
    assert run.returncode == 3 and run.stderr.count(b"\n") == 1
    assert mailsink("probe", "127.0.0.1:99999").returncode == 2
    assert mailsink("probe").returncode == 2


def test_send_everything_to_the_sink(sink, sink_ca, tmp_path):
    html = tmp_path / "body.html"
    html.write_text("<h1>Hi</h1>")
    attachment = tmp_path / "data.bin"
    attachment.write_bytes(b"\x00\xff")
    run = mailsink("send", "--server", f"{sink.smtp_host}:{sink.smtp_port}",
                   "--from", "me@example.com", "--to", "a@example.com", "--to", "b@example.com",
                   "--cc", "c@example.com", "--bcc", "d@example.com", "--subject", "Grüße",
                   "--body", ".dot\nline", "--html-file", str(html), "--attach", str(attachment),
                   "--header", "X-Run: 1", "--pipelining", "on", "--ca-file", sink_ca, "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["delivered"] and data["pipelined"] and data["tls"]["verified"]
    assert data["accepted"] == ["a@example.com", "b@example.com", "c@example.com",
                                "d@example.com"]
    listing = httpx.get(f"{sink.http_url}/api/v3/messages").json()
    assert listing["messages"][0]["subject"] == "Grüße"


def test_send_transcript_and_rejections(smtpd):
    server = smtpd()
    run = mailsink("send", "--server", server.address, "--from", "me@example.com",
                   "--to", "ok@example.com,reject@example.com", "--tls", "none", "--transcript")
    out = run.stdout.decode()
    assert run.returncode == 7                      # delivered, but not to everyone
    assert " -> RCPT TO:<reject@example.com>" in out and "<-  550 5.1.1" in out
    assert "REJECTED reject@example.com: 550 5.1.1" in out
    run = mailsink("send", "--server", server.address, "--to", "reject@example.com",
                   "--tls", "none")
    assert run.returncode == 6
    assert run.stderr == b"mailsink send: RCPT TO failed: 550 5.1.1 <reject@example.com>: " \
                         b"user unknown\n"


def test_send_quit_after_and_raw_data(smtpd):
    server = smtpd()
    run = mailsink("send", "--server", server.address, "--to", "a@example.com",
                   "--tls", "none", "--quit-after", "mail")
    assert run.returncode == 0 and b"Stopped after mail" in run.stdout and not server.messages
    raw = b"Subject: raw\r\n\r\n.raw body\r\n"
    run = mailsink("send", "--server", server.address, "--from", "r@example.com",
                   "--to", "a@example.com", "--tls", "none", "--data", "-", stdin=raw)
    assert run.returncode == 0, run.stderr
    assert server.messages[0].content == raw


def test_send_password_sources_and_auth_exit_code(smtpd, certs, tmp_path):
    server = smtpd(tls="starttls", auth=True)
    base = ["send", "--server", server.address, "--to", "a@example.com",
            "--ca-file", str(certs.ca), "--auth-user", USER, "--transcript"]
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    run = mailsink(*base, "--auth-password-file", str(secret))
    assert run.returncode == 0, run.stderr
    assert PASSWORD.encode() not in run.stdout
    run = mailsink(*base, "--auth-password-env", "PW", env={"PW": "wrong"})
    assert run.returncode == 5 and b"535" in run.stderr
    # no terminal to prompt on, and the password is never a flag value
    run = mailsink(*base)
    assert run.returncode == 2 and b"--auth-password-env" in run.stderr
    assert mailsink(*base, "--auth-password", "x").returncode == 2


def test_sendmail_reads_stdin_like_sendmail(sink):
    addr = f"{sink.smtp_host}:{sink.smtp_port}"
    message = b"From: Cron Daemon <cron@example.com>\nTo: ops@example.com\n" \
              b"Bcc: secret@example.com\nSubject: cron output\n\n..two dots\nlast\n"
    run = mailsink("sendmail", "-t", "-oi", "extra@example.com", stdin=message,
                   env={"MAILSINK_SENDMAIL_SMTP_ADDR": addr})
    assert run.returncode == 0, run.stderr
    listing = httpx.get(f"{sink.http_url}/api/v3/messages").json()
    stored = listing["messages"][0]
    detail = httpx.get(f"{sink.http_url}/api/v3/messages/{stored['id']}").json()
    assert detail["envelope"]["mail_from"] == "cron@example.com"
    assert sorted(detail["envelope"]["rcpt_tos"]) == ["extra@example.com", "ops@example.com",
                                                      "secret@example.com"]
    raw = httpx.get(f"{sink.http_url}/api/v3/messages/{stored['id']}/raw").content
    assert b"Bcc" not in raw and b"\r\n..two dots\r\n" in raw

    # without -i a line with a single dot ends the message; -f sets the sender
    run = mailsink("sendmail", "--smtp-addr", addr, "-f", "php@example.com", "web@example.com",
                   stdin=b"Subject: php\n\nbody\n.\nnot part of it\n")
    assert run.returncode == 0, run.stderr
    newest = httpx.get(f"{sink.http_url}/api/v3/messages").json()["messages"][0]
    raw = httpx.get(f"{sink.http_url}/api/v3/messages/{newest['id']}/raw").content
    assert raw == b"Subject: php\r\n\r\nbody\r\n"


def test_sendmail_errors_use_sysexits():
    assert mailsink("sendmail", stdin=b"Subject: x\n\n").returncode == 64   # no recipients
    assert mailsink("sendmail", "-bp").returncode == 64
    # nothing listens: a temporary failure, so cron may try again
    run = mailsink("sendmail", "--smtp-addr", "127.0.0.1:1", "a@example.com",
                   stdin=b"Subject: x\n\nbody\n")
    assert run.returncode == 75 and run.stderr.startswith(b"mailsink sendmail: Connection")


@pytest.mark.parametrize("argv", [["probe", "--help"], ["send", "--help"]])
def test_help(argv):
    run = mailsink(*argv)
    assert run.returncode == 0 and b"--tls" in run.stdout
