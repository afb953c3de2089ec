"""--ui-auth-file: HTTP basic auth (htpasswd, bcrypt) over the UI and APIs; health stays open."""
from __future__ import annotations

import subprocess
import sys

import bcrypt
import httpx
import pytest

from sink import Sink
from sink.app import StartupError


def htpasswd(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "users.htpasswd"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def bcrypt_line(user: str, password: str) -> str:
    # htpasswd -B writes the $2y$ variant; cost 4 keeps the test fast.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return f"{user}:{hashed.replace('$2b$', '$2y$', 1)}"


def test_everything_but_health_needs_credentials(tmp_path):
    path = htpasswd(tmp_path, ["# team", bcrypt_line("dev", "s3cret pass:word"),
                               bcrypt_line("ops", "other")])
    with Sink(ui_auth_file=path) as sink:
        base = sink.http_url
        for url in ["/", "/api/v3/messages", "/api/v3/events", "/static/app.js",
                    "/message/x", "/api/v3/openapi.json"]:
            response = httpx.get(base + url)
            assert response.status_code == 401, url
            assert response.headers["www-authenticate"].startswith('Basic realm="mailsink"')
            assert response.json() == {"error": "authentication required"}
        assert httpx.get(base + "/livez").status_code == 200
        assert httpx.get(base + "/readyz").status_code == 200
        good = ("dev", "s3cret pass:word")
        assert httpx.get(base + "/", auth=good).status_code == 200
        assert httpx.get(base + "/api/v3/messages", auth=good).status_code == 200
        assert httpx.get(base + "/", auth=good).status_code == 200        # remembered
        assert httpx.get(base + "/", auth=("ops", "other")).status_code == 200
        for bad in [("dev", "wrong"), ("nobody", "s3cret pass:word"), ("dev", "")]:
            assert httpx.get(base + "/", auth=bad).status_code == 401
        garbage = httpx.get(base + "/", headers={"Authorization": "Basic !!notbase64"})
        assert garbage.status_code == 401


def test_non_bcrypt_hashes_are_refused_at_start(tmp_path):
    path = htpasswd(tmp_path, ["dev:$apr1$abc$0123456789abcdefghijk."])
    with pytest.raises(StartupError, match="only bcrypt"):
        Sink(ui_auth_file=path).start()


def test_cli_reports_a_bad_auth_file_in_one_line(tmp_path):
    missing = tmp_path / "missing"
    result = subprocess.run(
        [sys.executable, "-m", "sink", "serve", "--smtp-port", "0", "--http-port", "0",
         "--ui-auth-file", str(missing)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--ui-auth-file" in result.stderr and "readable file" in result.stderr
    empty = htpasswd(tmp_path, ["# nobody"])
    result = subprocess.run(
        [sys.executable, "-m", "sink", "serve", "--smtp-port", "0", "--http-port", "0",
         "--ui-auth-file", empty], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"mailsink: auth file {empty} has no users"]


def test_health_stays_open_under_a_web_path(tmp_path):
    users = htpasswd(tmp_path, [bcrypt_line("dev", "secret")])
    with Sink(ui_auth_file=users, web_path="/mail") as sink:
        for path in ("/livez", "/mail/livez", "/mail/readyz"):
            assert httpx.get(sink.http_url + path).status_code == 200, path
        assert httpx.get(sink.http_url + "/mail/api/v3/messages").status_code == 401
