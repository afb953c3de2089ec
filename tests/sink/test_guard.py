"""Requests a web page elsewhere could make through the user's browser are refused."""
from __future__ import annotations

import smtplib

import httpx
import pytest
import websockets.sync.client

CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


def send_one(sink) -> str:
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], "Subject: kept\r\n\r\nx\r\n")
    return httpx.get(f"{sink.http_url}/api/v3/messages").json()["messages"][0]["id"]


def test_dns_rebinding_host_is_refused(sink):
    response = httpx.get(f"{sink.http_url}/api/v3/messages",
                         headers={"Host": "rebind.attacker.com:8025"})
    assert response.status_code == 403
    assert "--allowed-hosts" in response.json()["error"]
    # IPs, single-label names (compose services) and names public DNS cannot serve.
    for host in ("localhost:8025", "127.0.0.1", "[::1]:8025", "app.localhost", "mailsink:8025",
                 "host.docker.internal:8025", "mac.local", "10.0.0.5:8025", "mailsink.local"):
        assert httpx.get(f"{sink.http_url}/api/v3/messages",
                         headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_lets_a_proxy_domain_through():
    from sink import Sink

    with Sink(allowed_hosts="mail.dev.example.com, *.corp.example.org") as sink:
        for host, status in (("mail.dev.example.com", 200), ("a.corp.example.org", 200),
                             ("evil.example.net", 403)):
            assert httpx.get(f"{sink.http_url}/livez",
                             headers={"Host": host}).status_code == status, host
    with Sink(allowed_hosts="*") as sink:
        assert httpx.get(f"{sink.http_url}/livez",
                         headers={"Host": "anything.example.net"}).status_code == 200


def test_cross_site_delete_is_refused_and_nothing_is_lost(sink):
    message_id = send_one(sink)
    refused = httpx.delete(f"{sink.http_url}/api/v3/messages", headers=CROSS_SITE)
    assert refused.status_code == 403
    refused = httpx.delete(f"{sink.http_url}/api/v3/messages",
                           headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert httpx.get(f"{sink.http_url}/api/v3/messages/{message_id}").status_code == 200
    # The UI's own origin, and clients that send no Origin, may delete.
    same_origin = httpx.delete(f"{sink.http_url}/api/v3/messages/{message_id}",
                               headers={"Origin": sink.http_url})
    assert same_origin.status_code == 200


def test_cross_site_probe_request_is_refused_even_as_get(sink):
    # An <img src="http://localhost:8025/api/smtp/connect?host=..."> on another site.
    response = httpx.get(f"{sink.http_url}/api/smtp/connect",
                         params={"host": "127.0.0.1", "port": str(sink.smtp_port)},
                         headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    form_post = httpx.post(f"{sink.http_url}/api/smtp/send",
                           content=b'{"host": "127.0.0.1"}',
                           headers={"Content-Type": "text/plain", **CROSS_SITE})
    assert form_post.status_code == 403


def test_cross_site_reads_stay_open(sink):
    # The sandboxed message frame is an opaque origin: its image loads are cross-site.
    response = httpx.get(f"{sink.http_url}/livez", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


def test_websocket_from_another_origin_is_refused(sink):
    url = sink.http_url.replace("http://", "ws://") + "/api/v3/ws"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        websockets.sync.client.connect(url, origin="https://evil.example", open_timeout=5)
    with websockets.sync.client.connect(url, origin=sink.http_url, open_timeout=5):
        pass


def test_the_configured_cors_origin_may_do_what_the_sink_itself_may():
    from sink import Sink

    with Sink(cors_origin="http://app.example:3000") as sink:
        message_id = send_one(sink)
        allowed = httpx.delete(f"{sink.http_url}/api/v1/messages/{message_id}",
                               headers={"Origin": "http://app.example:3000",
                                        "Sec-Fetch-Site": "cross-site"})
        assert allowed.status_code == 200
        refused = httpx.delete(f"{sink.http_url}/api/v1/messages",
                               headers={"Origin": "http://other.example",
                                        "Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403
