"""The probe's HTTP endpoints, mounted in a real sink, against real SMTP servers."""
from __future__ import annotations

import asyncio
import base64
import email
from email import policy

import httpx

from sink import Sink, Settings
from sink.web.probe import probe_enabled


def post(sink, path, **body):
    return httpx.post(f"{sink.http_url}{path}", json=body, timeout=30)


def test_connect_get_and_post_keep_the_seed_shape(sink, smtpd):
    server = smtpd()
    got = httpx.get(f"{sink.http_url}/api/smtp/connect",
                    params={"host": server.host, "port": server.port}).json()
    assert got["success"] is True and got["message"] == "SMTP server reachable"
    assert got["host"] == server.host and got["port"] == server.port
    assert got["greeting"].startswith("220 test.local")
    assert got["capabilities"].startswith("250-test.local\r\n250-SIZE 33554432\r\n")
    assert got["note"] == "This is a connectivity test. Use the send feature to send emails."
    assert got["extensions"]["SIZE"] == 33554432 and "timings" in got and got["transcript"]
    posted = post(sink, "/api/smtp/connect", host=server.host, port=server.port, tls="none")
    assert posted.status_code == 200 and posted.json()["tls"] is False


def test_send_with_our_extensions(sink, smtpd):
    server = smtpd()
    response = post(sink, "/api/smtp/send", host=server.host, port=server.port,
                    **{"from": "alice@example.com"}, to="bob@example.com",
                    cc=["carol@example.com"], bcc=["dave@example.com"], subject="Grüße",
                    body="text part", html="<b>html part</b>", headers={"X-Probe": "yes"},
                    attachments=[{"filename": "a.bin",
                                  "content": base64.b64encode(b"\x00\x01").decode()}])
    data = response.json()
    assert response.status_code == 200, data
    assert data["success"] is True and data["message"] == "Email sent successfully"
    assert data["from"] == "alice@example.com" and data["to"] == "bob@example.com"
    assert data["accepted"] == ["bob@example.com", "carol@example.com", "dave@example.com"]
    assert data["queue_id"] == "TEST123" and data["pipelined"] is True
    received = server.messages[0]
    parsed = email.message_from_bytes(received.content, policy=policy.default)
    assert parsed["Subject"] == "Grüße" and parsed["X-Probe"] == "yes" and "Bcc" not in parsed
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["a.bin"]


def test_send_validation_errors_are_the_seeds(sink):
    url = f"{sink.http_url}/api/smtp/send"
    get = httpx.get(url)
    assert get.status_code == 405 and get.json() == {"success": False,
                                                     "error": "Method not allowed"}
    assert get.headers["allow"] == "POST"
    missing = post(sink, "/api/smtp/send", host="127.0.0.1", to="b@example.com")
    assert missing.status_code == 400
    assert missing.json()["error"] == "Missing required parameters: host, from, to, subject, body"
    port = post(sink, "/api/smtp/send", host="127.0.0.1", port=70000, **{"from": "a@b.c"},
                to="b@example.com", subject="s", body="b")
    assert port.status_code == 400 and port.json()["error"] == "Port must be between 1 and 65535"
    bad = post(sink, "/api/smtp/send", host="127.0.0.1", **{"from": "a@b.c"},
               to="<b@example.com>", subject="s", body="b")
    assert bad.status_code == 400 and bad.json()["error"] == (
        "Invalid email address format (from/to must not contain <, >, or whitespace)")
    no_host = httpx.get(f"{sink.http_url}/api/smtp/connect")
    assert no_host.status_code == 400
    assert no_host.json()["error"] == "Missing required parameter: host"
    assert post(sink, "/api/smtps/connect").json()["error"] == "Host is required"


def test_smtp_failures_name_the_stage_and_code(sink, smtpd):
    server = smtpd()
    response = post(sink, "/api/smtp/send", host=server.host, port=server.port,
                    **{"from": "a@example.com"}, to="reject@example.com", subject="s", body="b")
    data = response.json()
    assert response.status_code == 500 and data["success"] is False
    assert data["error"].startswith("RCPT TO failed: 550 5.1.1")
    assert (data["stage"], data["code"], data["enhanced_code"]) == ("rcpt", 550, "5.1.1")
    assert any("RSET" in line for line in data["transcript"])


def test_timeouts_are_reported_like_the_seed(sink, scripted):
    async def silent(reader, writer):
        await asyncio.sleep(3)
    server = scripted(silent)
    data = post(sink, "/api/smtp/connect", host=server.host, port=server.port,
                timeout=300).json()
    assert data["error"] == "Connection timeout" and data["stage"] == "greeting"
    data = post(sink, "/api/smtp/send", host=server.host, port=server.port, timeout=300,
                **{"from": "a@example.com"}, to="b@example.com", subject="s", body="b").json()
    assert data["error"] == "Connection timeout" and "greeting" in data["detail"]


def test_smtps_endpoints_use_implicit_tls(sink, smtpd):
    server = smtpd(tls="implicit", auth=True)
    from probe_servers import PASSWORD, USER
    data = post(sink, "/api/smtps/connect", host=server.host, port=server.port, insecure=True,
                username=USER, password=PASSWORD).json()
    assert data["success"] and data["protocol"] == "SMTPS" and data["tls"] is True
    assert data["authenticated"] is True and data["rtt"] > 0
    assert "SIZE 33554432" in data["capabilities"] and "8BITMIME" in data["capabilities"]
    assert data["tls_info"]["verified"] is False          # insecure: not checked
    assert PASSWORD not in str(data)
    sent = post(sink, "/api/smtps/send", host=server.host, port=server.port, insecure=True,
                username=USER, password=PASSWORD, auth_mechanism="LOGIN",
                **{"from": "a@example.com"}, to="b@example.com", subject="s", body="b").json()
    assert sent["message"] == "Email sent successfully over TLS" and sent["tls"] is True
    assert sent["subject"] == "s" and sent["auth_mechanism"] == "LOGIN"
    assert server.messages[0].tls and PASSWORD not in str(sent)
    # an unverified certificate is an error for send unless insecure
    refused = post(sink, "/api/smtps/send", host=server.host, port=server.port,
                   **{"from": "a@example.com"}, to="b@example.com", subject="s", body="b").json()
    assert refused["kind"] == "tls" and "verification failed" in refused["error"]


def test_off_unless_loopback_or_turned_on():
    assert probe_enabled(Settings(listen="127.0.0.1")) and probe_enabled(Settings(listen="::1"))
    assert not probe_enabled(Settings(listen="0.0.0.0"))
    assert probe_enabled(Settings(listen="0.0.0.0", probe_api="on"))
    with Sink(probe_api="off") as off:
        for path in ("/api/smtp/connect", "/api/smtps/send"):
            response = httpx.post(f"{off.http_url}{path}", json={"host": "127.0.0.1"})
            assert response.status_code == 403
            assert "--probe-api on" in response.json()["error"]


def test_allowlist(smtpd):
    server = smtpd()
    with Sink(probe_allow_hosts="mail.example.com, 127.0.0.0/8") as allowed:
        ok = post(allowed, "/api/smtp/connect", host=server.host, port=server.port)
        assert ok.status_code == 200
        no = post(allowed, "/api/smtp/connect", host="localhost", port=server.port)
        assert no.status_code == 403 and no.json()["error"].startswith("Host not allowed")
