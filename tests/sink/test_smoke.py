import smtplib

import httpx


def test_message_round_trip_is_byte_exact(sink):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n.dot line\r\nbody\r\n"
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com", "hidden@example.com"], raw)
    listing = httpx.get(f"{sink.http_url}/api/v3/messages").json()
    assert listing["total"] == 1
    summary = listing["messages"][0]
    assert summary["subject"] == "hi"
    detail = httpx.get(f"{sink.http_url}/api/v3/messages/{summary['id']}").json()
    assert detail["envelope"]["rcpt_tos"] == ["b@example.com", "hidden@example.com"]
    assert httpx.get(f"{sink.http_url}/api/v3/messages/{summary['id']}/raw").content == raw
