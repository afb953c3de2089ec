"""Jim, MailHog's chaos monkey: the /api/v2/jim calls and his behaviour, with a fixed seed."""
from __future__ import annotations

import smtplib
import time

import httpx
import pytest

from sink import Settings, Sink

QUIET_JIM = dict(invite_jim=True, jim_accept=1.0, jim_disconnect=0.0, jim_linkspeed_affect=0.0,
                 jim_reject_sender=0.0, jim_reject_recipient=0.0, jim_reject_auth=0.0)


def test_jim_api_follows_mailhog(sink, api):
    assert api.get("/api/v2/jim").status_code == 404
    assert api.put("/api/v2/jim", json={}).status_code == 404
    assert api.delete("/api/v2/jim").status_code == 404
    created = api.post("/api/v2/jim")
    assert created.status_code == 201 and created.content == b""
    assert api.get("/api/v2/jim").json() == {
        "DisconnectChance": 0.005, "AcceptChance": 0.99, "LinkSpeedAffect": 0.1,
        "LinkSpeedMin": 1024, "LinkSpeedMax": 10240, "RejectSenderChance": 0.05,
        "RejectRecipientChance": 0.05, "RejectAuthChance": 0.05}
    assert api.post("/api/v2/jim").status_code == 400
    # As in MailHog, keys match case-insensitively and a key left out is 0.
    changed = api.put("/api/v2/jim", json={"acceptchance": 1, "RejectSenderChance": 0.5})
    assert changed.status_code == 200 and changed.content == b""
    settings = api.get("/api/v2/jim").json()
    assert settings["AcceptChance"] == 1 and settings["RejectSenderChance"] == 0.5
    assert settings["DisconnectChance"] == 0 and settings["LinkSpeedMax"] == 0
    assert api.put("/api/v2/jim", content=b"{not json").status_code == 400
    assert api.put("/api/v2/jim", json={"AcceptChance": "often"}).status_code == 400
    assert api.put("/api/v2/jim", json={"AcceptChance": 2}).status_code == 400
    assert api.get("/api/v2/jim").json() == settings  # bad input changed nothing
    assert api.delete("/api/v2/jim").status_code == 200
    assert api.get("/api/v2/jim").status_code == 404
    # Invited again without a body, he comes back with the last settings.
    assert api.post("/api/v2/jim").status_code == 201
    assert api.get("/api/v2/jim").json() == settings
    assert api.delete("/api/v2/jim").status_code == 200
    created = api.post("/api/v2/jim", json={**settings, "RejectAuthChance": 1})
    assert created.status_code == 201
    assert api.get("/api/v2/jim").json()["RejectAuthChance"] == 1


def _replies(sink: Sink, attempts: int = 30) -> list[int]:
    """MAIL/RCPT reply codes for a fixed script on one connection."""
    codes = []
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port, local_hostname="client.example") as client:
        client.ehlo()
        for number in range(attempts):
            code, _ = client.mail(f"sender{number}@example.com")
            codes.append(code)
            if code == 250:
                codes.append(client.rcpt(f"rcpt{number}@example.org")[0])
            client.rset()
    return codes


def test_seeded_jim_repeats_the_same_replies():
    settings = Settings(smtp_port=0, http_port=0, chaos_seed=1234,
                        **{**QUIET_JIM, "jim_reject_sender": 0.3, "jim_reject_recipient": 0.3})
    runs = []
    for _ in range(2):
        with Sink(settings) as sink:
            runs.append(_replies(sink))
    assert runs[0] == runs[1]
    assert {250, 550} <= set(runs[0])
    with Sink(settings) as sink:
        first = _replies(sink)
        # Re-seeding through the API starts the same draws again.
        httpx.put(f"{sink.http_url}/api/v3/chaos", json={"seed": 1234}).raise_for_status()
        assert _replies(sink) == first == runs[0]
        httpx.put(f"{sink.http_url}/api/v3/chaos", json={"seed": 99}).raise_for_status()
        assert _replies(sink) != first


def test_jim_refuses_senders_with_mailhog_text():
    with Sink(Settings(smtp_port=0, http_port=0, **{**QUIET_JIM, "jim_reject_sender": 1.0})) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.decode() == "5.1.8 Invalid sender a@example.com"


def test_jim_refusing_connections_closes_before_the_banner():
    with Sink(Settings(smtp_port=0, http_port=0, **{**QUIET_JIM, "jim_accept": 0.0})) as sink:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtplib.SMTP(sink.smtp_host, sink.smtp_port, timeout=5)
        # Sent away by the API, Jim lets everyone in again.
        httpx.delete(f"{sink.http_url}/api/v2/jim").raise_for_status()
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port, timeout=5) as client:
            assert client.noop()[0] == 250


def test_jim_disconnects():
    with Sink(Settings(smtp_port=0, http_port=0, **{**QUIET_JIM, "jim_disconnect": 1.0})) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.ehlo()
                client.mail("a@example.com")


def test_jim_throttles_the_link():
    # 20,000 bytes/s: a 10,000-byte message takes at least half a second.
    jim = {**QUIET_JIM, "jim_linkspeed_affect": 1.0, "jim_linkspeed_min": 20000.0,
           "jim_linkspeed_max": 20000.0}
    with Sink(Settings(smtp_port=0, http_port=0, **jim)) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port, timeout=10) as client:
            started = time.monotonic()
            client.sendmail("a@example.com", ["b@example.org"],
                            b"Subject: slow\r\n\r\n" + b"x" * 9980 + b"\r\n")
            assert time.monotonic() - started >= 0.45


def test_jim_refuses_auth():
    settings = Settings(smtp_port=0, http_port=0, auth="any", auth_allow_insecure=True,
                        **{**QUIET_JIM, "jim_reject_auth": 1.0})
    with Sink(settings) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.login("user", "secret")
    assert refused.value.smtp_code == 535
