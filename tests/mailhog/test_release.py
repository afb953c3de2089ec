"""Release: a caught message sent on through the probe library, to a second sink and to Exim."""
from __future__ import annotations

import json
import pathlib
import subprocess

import httpx
import pytest

from sink import Settings, Sink
from tests.conftest import require_tool
from tests.mailhog.mailhog_helpers import reference

NODE_DIR = pathlib.Path(__file__).parent / "node"


@pytest.fixture
def target(tmp_path):
    """A second sink to release to; AUTH on plain text checks the file's users."""
    users = tmp_path / "users"
    users.write_text("relay:relay-password\n")
    settings = Settings(smtp_port=0, http_port=0, auth="file", auth_file=str(users),
                        auth_allow_insecure=True, hostname="target.example",
                        faults="rcpt *@nowhere.example 550 5.1.1 No such user here")
    with Sink(settings) as running:
        yield running


def caught(sink, api, send_reference, name: str = "plain") -> tuple[str, bytes]:
    send_reference(sink, name)
    return api.get("/api/v2/messages").json()["items"][0]["ID"], reference(name)[0]


def received_by(target) -> list[dict]:
    return httpx.get(f"{target.http_url}/api/v2/messages").json()["items"]


def test_mailhog_release_to_a_second_sink(sink, api, send_reference, target):
    message_id, raw = caught(sink, api, send_reference)
    # The MailHog UI's body: lower-case keys, the port as text.
    response = api.post(f"/api/v1/messages/{message_id}/release",
                        json={"host": target.smtp_host, "port": str(target.smtp_port),
                              "email": "someone@example.net"})
    assert response.status_code == 200 and response.content == b""
    [released] = received_by(target)
    assert released["Raw"]["From"] == "nobody@mailsink.local"
    assert released["Raw"]["To"] == ["someone@example.net"]
    data = httpx.get(f"{target.http_url}/api/v1/messages/{released['ID']}/download").content
    received, _, rest = data.partition(b"\r\n\t")
    assert received.startswith(b"Received: from client.example by mailsink.local (mailsink) id ")
    assert rest.split(b"\r\n", 1)[1] == raw  # the stored bytes, unchanged
    # The original in the first sink is untouched.
    assert api.get(f"/api/v1/messages/{message_id}/download").content == raw


@pytest.mark.parametrize("mechanism, recorded", [
    ("PLAIN", "PLAIN"), ("CRAMMD5", "CRAM-MD5"), ("LOGIN", "LOGIN")])
def test_release_with_auth(sink, api, send_reference, target, mechanism, recorded):
    message_id, _ = caught(sink, api, send_reference)
    # With a password the certificate is checked: "Insecure" (ours) accepts the target's.
    response = api.post(f"/api/v1/messages/{message_id}/release", json={
        "Host": target.smtp_host, "Port": str(target.smtp_port), "Email": "x@example.net",
        "Username": "relay", "Password": "relay-password", "Mechanism": mechanism,
        "Insecure": True})
    assert response.status_code == 200, response.text
    [released] = received_by(target)
    envelope = httpx.get(f"{target.http_url}/api/v3/messages/{released['ID']}").json()["envelope"]
    assert (envelope["auth_user"], envelope["auth_mechanism"]) == ("relay", recorded)


def test_release_failures_carry_the_smtp_reply(sink, api, send_reference, target):
    message_id, _ = caught(sink, api, send_reference)
    refused = api.post(f"/api/v1/messages/{message_id}/release", json={
        "Host": target.smtp_host, "Port": str(target.smtp_port), "Email": "x@nowhere.example"})
    assert refused.status_code == 500  # as MailHog
    body = refused.json()
    assert "550" in body["error"] and "No such user here" in body["error"]
    assert body["code"] == 550 and body["enhanced_code"] == "5.1.1"
    wrong = api.post(f"/api/v1/messages/{message_id}/release", json={
        "Host": target.smtp_host, "Port": str(target.smtp_port), "Email": "x@example.net",
        "Username": "relay", "Password": "wrong", "Mechanism": "PLAIN", "Insecure": True})
    assert wrong.status_code == 500 and wrong.json()["code"] == 535
    # Without "Insecure", a password is never sent to a certificate nobody vouches for.
    unchecked = api.post(f"/api/v1/messages/{message_id}/release", json={
        "Host": target.smtp_host, "Port": str(target.smtp_port), "Email": "x@example.net",
        "Username": "relay", "Password": "relay-password", "Mechanism": "PLAIN"})
    assert unchecked.status_code == 500 and unchecked.json()["stage"] == "tls"
    closed = api.post(f"/api/v1/messages/{message_id}/release", json={
        "Host": "127.0.0.1", "Port": "1", "Email": "x@example.net"})
    assert closed.status_code == 500 and closed.json()["stage"] == "connect"
    for body, status in [
        ({"Host": target.smtp_host, "Port": "x", "Email": "a@b.c"}, 400),
        ({"Host": target.smtp_host, "Port": str(target.smtp_port)}, 400),
        ({"Host": "", "Port": "25", "Email": "a@b.c"}, 400),
        ({"Host": target.smtp_host, "Port": str(target.smtp_port), "Email": "a@b.c",
          "Username": "u", "Password": "p", "Mechanism": "GSSAPI"}, 400),
        ({"Name": "no such server", "Email": "a@b.c"}, 400),
    ]:
        response = api.post(f"/api/v1/messages/{message_id}/release", json=body)
        assert response.status_code == status, (body, response.text)
    assert api.post(f"/api/v1/messages/{message_id}/release", content=b"{oops").status_code == 400
    unknown = api.post("/api/v1/messages/nope/release", json={
        "Host": target.smtp_host, "Port": str(target.smtp_port), "Email": "a@b.c"})
    assert unknown.status_code == 404
    assert received_by(target) == []


def test_saved_servers_from_a_file_and_from_save(tmp_path, send_reference, target):
    servers = tmp_path / "outgoing.json"
    servers.write_text(json.dumps({"target": {
        "name": "target", "host": target.smtp_host, "port": str(target.smtp_port),
        "email": "saved@example.net", "username": "relay", "password": "relay-password",
        "mechanism": "PLAIN", "insecure": True}}))
    with Sink(Settings(smtp_port=0, http_port=0, outgoing_smtp=str(servers))) as sink:
        api = httpx.Client(base_url=sink.http_url)
        listed = api.get("/api/v2/outgoing-smtp").json()
        assert listed == {"target": {"Name": "target", "Save": False, "Email": "saved@example.net",
                                     "Host": target.smtp_host, "Port": str(target.smtp_port),
                                     "Username": "relay", "Mechanism": "PLAIN"}}
        assert "relay-password" not in api.get("/api/v2/outgoing-smtp").text
        message_id, _ = caught(sink, api, send_reference)
        assert api.post(f"/api/v1/messages/{message_id}/release",
                        json={"Name": "target"}).status_code == 200
        assert received_by(target)[0]["Raw"]["To"] == ["saved@example.net"]
        saved = api.post(f"/api/v1/messages/{message_id}/release", json={
            "Name": "second", "Save": True, "Host": target.smtp_host,
            "Port": str(target.smtp_port), "Email": "other@example.net"})
        assert saved.status_code == 200
        assert set(api.get("/api/v2/outgoing-smtp").json()) == {"target", "second"}
        again = api.post(f"/api/v1/messages/{message_id}/release", json={
            "Name": "second", "Save": True, "Host": "x", "Port": "25", "Email": "a@b.c"})
        assert again.status_code == 400  # a taken name
        ours = api.post(f"/api/v3/messages/{message_id}/release",
                        json={"server": "second", "to": ["a@example.net", "b@example.net"]})
        assert ours.status_code == 200 and ours.json()["accepted"] == ["a@example.net",
                                                                       "b@example.net"]
        assert len(received_by(target)) == 3


def test_a_bad_servers_file_stops_the_start(tmp_path):
    bad = tmp_path / "outgoing.json"
    bad.write_text("{not json")
    from sink.app import StartupError
    with pytest.raises(StartupError, match="not JSON"):
        Sink(Settings(smtp_port=0, http_port=0, outgoing_smtp=str(bad))).start()


def test_our_release_api_with_starttls_and_a_transcript(sink, api, send_reference, target):
    message_id, _ = caught(sink, api, send_reference)
    response = api.post(f"/api/v3/messages/{message_id}/release", json={
        "host": target.smtp_host, "port": target.smtp_port, "to": "x@example.net",
        "tls": "starttls", "insecure": True, "username": "relay",
        "password": "relay-password", "mechanism": "CRAM-MD5", "from": "ops@example.com"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["tls"] is True and result["accepted"] == ["x@example.net"]
    assert result["reply"].startswith("250")
    transcript = "\n".join(result["transcript"])
    assert "STARTTLS" in transcript and "relay-password" not in transcript
    [released] = received_by(target)
    assert released["Raw"]["From"] == "ops@example.com"
    envelope = httpx.get(f"{target.http_url}/api/v3/messages/{released['ID']}").json()["envelope"]
    assert envelope["tls_version"] in ("TLSv1.2", "TLSv1.3")
    failed = api.post(f"/api/v3/messages/{message_id}/release", json={
        "host": target.smtp_host, "port": target.smtp_port, "to": "x@nowhere.example"})
    assert failed.status_code == 502
    assert failed.json()["stage"] == "rcpt" and failed.json()["code"] == 550
    # Verifying the target's certificate (made by its own CA) fails by default.
    unverified = api.post(f"/api/v3/messages/{message_id}/release", json={
        "host": target.smtp_host, "port": target.smtp_port, "to": "x@example.net",
        "tls": "starttls"})
    assert unverified.status_code == 502 and unverified.json()["stage"] in ("tls", "starttls")


def test_npm_client_release_message(sink, api, send_reference, target):
    node = require_tool("node")
    message_id, _ = caught(sink, api, send_reference)
    port = str(sink.http_url.rsplit(":", 1)[1])
    config = {"host": target.smtp_host, "port": str(target.smtp_port), "email": "npm@example.net"}
    result = subprocess.run([node, "call.js", port, "releaseMessage",
                             json.dumps([message_id, config])],
                            cwd=NODE_DIR, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"statusCode": 200}
    assert received_by(target)[0]["Raw"]["To"] == ["npm@example.net"]


def test_release_to_exim_with_starttls_and_auth(sink, api, send_reference, exim):
    message_id, raw = caught(sink, api, send_reference, "nested")
    for mechanism in ("PLAIN", "CRAMMD5"):
        response = api.post(f"/api/v3/messages/{message_id}/release", json={
            "host": exim.host, "port": exim.sub_port, "to": f"alice@{exim.DOMAIN}",
            "username": exim.USER, "password": exim.PASSWORD, "mechanism": mechanism,
            "tls": "starttls", "insecure": True})
        assert response.status_code == 200, response.text
        assert response.json()["tls"] is True
    delivered = exim.mailbox("alice", count=2)
    assert len(delivered) == 2
    for data in delivered:
        assert raw.replace(b"\r\n", b"\n") in data.replace(b"\r\n", b"\n")
        assert b"by mailsink.local (mailsink) id " + message_id.encode() in data
    # Exim refuses an unknown local user: the error names the stage and the reply.
    refused = api.post(f"/api/v3/messages/{message_id}/release", json={
        "host": exim.host, "port": exim.plain_port, "to": f"nobody-here@{exim.DOMAIN}",
        "tls": "starttls", "insecure": True})
    assert refused.status_code == 502
    assert refused.json()["stage"] == "rcpt" and refused.json()["code"] // 100 == 5


def test_release_to_a_requested_host_follows_the_probe_policy(tmp_path, send_reference, target):
    """Off (as when listening beyond loopback): only the operator's servers; an
    allowlist limits the rest. Nothing a stranger sends makes the sink relay."""
    servers = tmp_path / "outgoing.json"
    servers.write_text(json.dumps({"target": {
        "host": target.smtp_host, "port": str(target.smtp_port), "email": "ok@example.net",
        "username": "relay", "password": "relay-password", "mechanism": "PLAIN",
        "insecure": True}}))
    requested = {"host": target.smtp_host, "port": str(target.smtp_port),
                 "email": "stranger@example.net"}
    with Sink(Settings(smtp_port=0, http_port=0, probe_api="off",
                       outgoing_smtp=str(servers))) as sink:
        api = httpx.Client(base_url=sink.http_url)
        message_id, _ = caught(sink, api, send_reference)
        refused = api.post(f"/api/v1/messages/{message_id}/release", json=requested)
        assert refused.status_code == 403 and "--probe-api on" in refused.json()["error"]
        saving = api.post(f"/api/v1/messages/{message_id}/release",
                          json={**requested, "name": "mine", "save": True})
        assert saving.status_code == 403
        ours = api.post(f"/api/v3/messages/{message_id}/release",
                        json={**requested, "to": "stranger@example.net"})
        assert ours.status_code == 403
        assert received_by(target) == []
        allowed = api.post(f"/api/v1/messages/{message_id}/release", json={"name": "target"})
        assert allowed.status_code == 200
        assert [m["Raw"]["To"] for m in received_by(target)] == [["ok@example.net"]]
    with Sink(Settings(smtp_port=0, http_port=0, probe_allow_hosts="mx.example.com")) as sink:
        api = httpx.Client(base_url=sink.http_url)
        message_id, _ = caught(sink, api, send_reference)
        refused = api.post(f"/api/v1/messages/{message_id}/release", json=requested)
        assert refused.status_code == 403 and "--probe-allow-hosts" in refused.json()["error"]
