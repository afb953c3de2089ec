"""``mailsink serve`` as a user runs it: a real process, flags, env vars, signals."""
from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.wire import Wire

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Served:
    """A ``mailsink serve`` process on free ports; reads the bound ports from its output."""

    def __init__(self, *args: str, env: dict | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sink", "serve", *args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        line = self.process.stdout.readline()
        match = re.search(r"SMTP on (\S+):(\d+), HTTP on http://\S+:(\d+)/", line)
        if not match:
            self.process.kill()
            raise AssertionError(f"unexpected start-up output: {line!r} "
                                 f"{self.process.stderr.read()}")
        self.host, self.smtp_port, self.http_port = match[1], int(match[2]), int(match[3])
        self.http_url = f"http://127.0.0.1:{self.http_port}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=20)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sink", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env={**os.environ, **(env or {})})


def send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("a@example.com", ["b@example.com"], f"Subject: {subject}\r\n\r\nx\r\n")


def subjects(http_url: str) -> list[str]:
    return [m["subject"] for m in httpx.get(f"{http_url}/api/v3/messages").json()["messages"]]


def test_serve_prints_ports_and_health_endpoints():
    served = Served("--smtp-port", "0", "--http-port", "0")
    try:
        assert httpx.get(f"{served.http_url}/livez").status_code == 200
        ready = httpx.get(f"{served.http_url}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        send(served.smtp_port, "hello")
        assert subjects(served.http_url) == ["hello"]
    finally:
        assert served.stop() == 0


def test_env_vars_configure_and_flags_win():
    served = Served("--smtp-port", "0", env={"MAILSINK_HTTP_PORT": "0",
                                             "MAILSINK_SMTP_PORT": "1",
                                             "MAILSINK_HOSTNAME": "env.example",
                                             "MAILSINK_MAX_SIZE": "12345"})
    try:
        with Wire("127.0.0.1", served.smtp_port) as wire:
            assert "env.example" in wire.greeting
            assert "SIZE 12345" in wire.cmd("EHLO x")
    finally:
        served.stop()


def test_restart_with_db_keeps_every_message(tmp_path):
    db = str(tmp_path / "mail.db")
    served = Served("--smtp-port", "0", "--http-port", "0", "--db", db)
    for n in range(30):
        send(served.smtp_port, f"m{n}")
    assert served.stop() == 0
    again = Served("--smtp-port", "0", "--http-port", "0", "--db", db)
    try:
        listing = httpx.get(f"{again.http_url}/api/v3/messages", params={"limit": 100}).json()
        assert listing["total"] == 30
        assert {m["subject"] for m in listing["messages"]} == {f"m{n}" for n in range(30)}
    finally:
        again.stop()


def test_default_store_leaves_nothing_behind(tmp_path):
    served = Served("--smtp-port", "0", "--http-port", "0", env={"TMPDIR": str(tmp_path)})
    send(served.smtp_port, "temporary")
    assert any(tmp_path.iterdir())
    served.stop()
    assert not any(tmp_path.iterdir())


def test_sigterm_lets_message_in_data_finish_and_refuses_idle_sessions(tmp_path):
    db = str(tmp_path / "mail.db")
    served = Served("--smtp-port", "0", "--http-port", "0", "--db", db)
    idle = Wire("127.0.0.1", served.smtp_port)
    idle.cmd("EHLO idle")
    busy = Wire("127.0.0.1", served.smtp_port)
    busy.cmd("EHLO busy")
    busy.cmd("MAIL FROM:<a@example.com>")
    busy.cmd("RCPT TO:<b@example.com>")
    busy.cmd("DATA")
    busy.send(b"Subject: in flight\r\n\r\nfirst half ")
    served.process.send_signal(signal.SIGTERM)
    assert idle.reply().startswith("421 4.3.2")
    time.sleep(0.3)
    busy.send(b"second half\r\n.\r\n")
    assert busy.reply().startswith("250 2.0.0")
    assert busy.reply().startswith("421")
    assert served.process.wait(timeout=20) == 0
    again = Served("--smtp-port", "0", "--http-port", "0", "--db", db)
    try:
        assert subjects(again.http_url) == ["in flight"]
    finally:
        again.stop()
        idle.close()
        busy.close()


def test_port_in_use_is_one_clear_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--smtp-port", str(port), "--http-port", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unwritable_db_path_is_one_clear_line(tmp_path):
    result = run_cli("serve", "--smtp-port", "0", "--http-port", "0",
                     "--db", str(tmp_path / "missing" / "dir" / "mail.db"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "missing" in result.stderr
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    result = run_cli("serve", "--smtp-port", "0", "--http-port", "0", "--db", str(not_a_db))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "garbage.db" in result.stderr
    assert not_a_db.read_bytes() == b"this is not sqlite" * 100  # nothing lost


@pytest.mark.parametrize("args, env, expected", [
    (["--smtp-port", "70000"], {}, "65535"),
    (["--smtp-port", "abc"], {}, "abc"),
    (["--max-size", "-1"], {}, "at least 1"),
    ([], {"MAILSINK_SMTP_PORT": "nope"}, "MAILSINK_SMTP_PORT"),
    ([], {"MAILSINK_LOG_LEVEL": "loud"}, "MAILSINK_LOG_LEVEL"),
])
def test_bad_values_are_usage_errors(args, env, expected):
    result = run_cli("serve", *args, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


def test_no_command_prints_help():
    result = run_cli()
    assert result.returncode == 2
    assert "serve" in result.stderr


def test_every_option_is_documented_in_the_readme():
    from sink.settings import OPTIONS

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        text = readme.read()
    undocumented = [o.flag for o in OPTIONS if f"`{o.flag}`" not in text or o.env not in text]
    assert undocumented == []
