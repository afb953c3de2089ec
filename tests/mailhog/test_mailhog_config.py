"""MailHog's configuration names (MH_* variables, MailHog's flags) and the MailHog preset."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from sink.settings import Settings, SettingsError, mailhog_env_settings


def from_env(**environ: str) -> Settings:
    return Settings.from_sources({}, environ)


def test_each_variable_maps_to_our_setting(tmp_path):
    settings = from_env(MH_SMTP_BIND_ADDR="0.0.0.0:2525", MH_API_BIND_ADDR="0.0.0.0:9025",
                        MH_UI_BIND_ADDR="0.0.0.0:9025", MH_HOSTNAME="mailhog.example",
                        MH_STORAGE="maildir", MH_MAILDIR_PATH=str(tmp_path),
                        MH_CORS_ORIGIN="http://app.test", MH_OUTGOING_SMTP="/etc/servers.json",
                        MH_UI_WEB_PATH="mail/", MH_INVITE_JIM="true")
    assert (settings.listen, settings.smtp_port, settings.http_port) == ("0.0.0.0", 2525, 9025)
    assert settings.hostname == "mailhog.example"
    assert settings.db == str(tmp_path / "mailsink.sqlite3")
    assert settings.cors_origin == "http://app.test"
    assert settings.outgoing_smtp == "/etc/servers.json"
    assert settings.web_path == "/mail"
    assert settings.invite_jim is True and settings.mailhog is True


def test_bind_addresses_without_a_host_mean_every_interface():
    assert mailhog_env_settings({"MH_SMTP_BIND_ADDR": ":1025"}) == {
        "smtp_port": 1025, "listen": "0.0.0.0"}
    assert mailhog_env_settings({"MH_API_BIND_ADDR": "[::1]:8025"}) == {
        "http_port": 8025, "listen": "::1"}


def test_memory_storage_is_the_default_and_go_booleans_work():
    assert from_env(MH_STORAGE="memory").db is None
    assert from_env(MH_INVITE_JIM="t").invite_jim is True
    assert from_env(MH_INVITE_JIM="0").invite_jim is False


@pytest.mark.parametrize("environ, message", [
    ({"MH_STORAGE": "mongodb"}, "no MongoDB storage"),
    ({"MH_STORAGE": "redis"}, "must be memory, maildir or mongodb"),
    ({"MH_API_BIND_ADDR": "0.0.0.0:8025", "MH_UI_BIND_ADDR": "0.0.0.0:8026"},
     "serves the UI and the API on one address"),
    ({"MH_SMTP_BIND_ADDR": "127.0.0.1:1025", "MH_API_BIND_ADDR": "0.0.0.0:8025"},
     "binds SMTP and HTTP to one address"),
    ({"MH_SMTP_BIND_ADDR": "1025"}, "wants host:port"),
    ({"MH_SMTP_BIND_ADDR": "x:99999"}, "wants host:port"),
    ({"MH_INVITE_JIM": "maybe"}, "must be true or false"),
    ({"MH_UI_WEB_PATH": "a b"}, "MH_UI_WEB_PATH"),
])
def test_what_has_no_equivalent_is_refused_clearly(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_sources({}, environ)


def test_any_mh_variable_implies_the_preset_and_flags_win():
    assert from_env().listen == "127.0.0.1" and not from_env().mailhog
    preset = from_env(MH_HOSTNAME="x")
    assert preset.mailhog and preset.listen == "0.0.0.0"
    # mhsendmail's variable belongs to a client: no preset from it alone.
    assert not from_env(MH_SENDMAIL_SMTP_ADDR="localhost:1025").mailhog
    assert from_env(MH_HOSTNAME="x", MAILSINK_LISTEN="127.0.0.1").listen == "127.0.0.1"
    # MH_* beat MAILSINK_* (our image sets MAILSINK_SMTP_PORT etc.); flags beat both.
    assert from_env(MH_SMTP_BIND_ADDR=":2000", MAILSINK_SMTP_PORT="3000").smtp_port == 2000
    assert Settings.from_sources({"smtp_port": 4000}, {"MH_SMTP_BIND_ADDR": ":2000"}).smtp_port == 4000
    assert Settings.from_sources({"smtp_port": 4000}, {"MAILSINK_SMTP_PORT": "3000"}).smtp_port == 4000
    assert Settings.from_sources({"mailhog": True}, {}).listen == "0.0.0.0"
    if "auth" in Settings.__dataclass_fields__:
        assert (preset.auth, preset.auth_allow_insecure) == ("any", True)


def _start(command: list[str], environ: dict[str, str]) -> tuple[subprocess.Popen, str, int, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MH_", "MAILSINK_"))}
    process = subprocess.Popen([sys.executable, "-m", "sink", *command], env={**env, **environ},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.search(r"SMTP on (\S+):(\d+), HTTP on http://\S+:(\d+)/", line)
    assert found, line + process.stderr.read()
    return process, found.group(1), int(found.group(2)), int(found.group(3))


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_mailhog_command_takes_mailhogs_flags():
    process, host, _, http_port = _start(
        ["mailhog", "-smtp-bind-addr", "127.0.0.1:0", "--api-bind-addr=127.0.0.1:0",
         "-ui-web-path=/mh", "-invite-jim", "-jim-accept", "1", "-jim-reject-auth=0.5"], {})
    try:
        assert host == "127.0.0.1"
        jim = httpx.get(f"http://127.0.0.1:{http_port}/mh/api/v2/jim").json()
        assert jim["AcceptChance"] == 1 and jim["RejectAuthChance"] == 0.5
    finally:
        _stop(process)


def test_serve_reads_mh_variables():
    process, host, _, http_port = _start(
        ["serve"], {"MH_SMTP_BIND_ADDR": "127.0.0.1:0", "MH_API_BIND_ADDR": "127.0.0.1:0",
                    "MH_CORS_ORIGIN": "http://app.test"})
    try:
        response = httpx.get(f"http://127.0.0.1:{http_port}/api/v2/messages")
        assert response.headers["access-control-allow-origin"] == "http://app.test"
    finally:
        _stop(process)


@pytest.mark.parametrize("command, environ", [
    (["serve"], {"MH_STORAGE": "mongodb"}),
    (["mailhog", "-storage", "mongodb"], {}),
    (["mailhog", "-jim-accept", "3"], {}),
])
def test_refusals_end_in_one_clear_line_and_exit_non_zero(command, environ):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MH_", "MAILSINK_"))}
    result = subprocess.run([sys.executable, "-m", "sink", *command], env={**env, **environ},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mailsink") and ("mongodb" in last.lower() or "chance" in last)


def test_mailhog_preset_accepts_made_up_auth_on_the_plain_port():
    # What apps set up for MailHog do: AUTH PLAIN, invented credentials, no TLS.
    from sink import Sink
    import smtplib
    settings = Settings.from_sources({"mailhog": True, "listen": "127.0.0.1", "smtp_port": 0,
                                      "http_port": 0}, {})
    with Sink(settings) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            client.ehlo()
            assert client.has_extn("auth")
            client.login("anything", "made-up")
            client.sendmail("app@example.com", ["user@example.org"], b"Subject: hi\r\n\r\nx\r\n")
        detail = httpx.get(f"{sink.http_url}/api/v3/messages").json()["messages"][0]
        envelope = httpx.get(f"{sink.http_url}/api/v3/messages/{detail['id']}").json()["envelope"]
        assert envelope["auth_user"] == "anything"


def test_sendmail_honours_mh_sendmail_smtp_addr(sink):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MH_", "MAILSINK_"))}
    env["MH_SENDMAIL_SMTP_ADDR"] = f"{sink.smtp_host}:{sink.smtp_port}"
    result = subprocess.run(
        [sys.executable, "-m", "sink", "sendmail", "-t", "-f", "app@example.com"],
        input=b"To: user@example.org\r\nSubject: via mhsendmail's variable\r\n\r\nhi\r\n",
        env=env, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    page = httpx.get(f"{sink.http_url}/api/v2/messages").json()
    assert page["items"][0]["Content"]["Headers"]["Subject"] == ["via mhsendmail's variable"]
    assert page["items"][0]["Raw"]["From"] == "app@example.com"
