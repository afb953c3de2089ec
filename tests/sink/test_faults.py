"""Deterministic SMTP faults (fixed replies, greylisting, rate limit, delay), seen by smtplib."""
from __future__ import annotations

import smtplib
import time

import httpx
import pytest

from sink import Settings, Sink

MESSAGE = b"Subject: fault test\r\n\r\nbody\r\n"


def faulty(rules: str) -> Sink:
    return Sink(Settings(smtp_port=0, http_port=0, faults=rules))


def count(sink: Sink) -> int:
    return httpx.get(f"{sink.http_url}/api/v3/messages").json()["total"]


def test_fixed_reply_for_matching_recipients():
    with faulty("rcpt bounce@* 550 5.1.1 No such user") as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            refused = client.sendmail("a@example.com", ["Bounce@example.org", "ok@example.org"],
                                      MESSAGE)
        assert refused == {"Bounce@example.org": (550, b"5.1.1 No such user")}
        assert count(sink) == 1


def test_fixed_reply_for_senders_and_at_end_of_data():
    with faulty("mail spam@* 554 5.7.1 Go away; data *@late.example 451 4.3.0 Try later") as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as sender:
                client.sendmail("spam@example.com", ["b@example.org"], MESSAGE)
            assert sender.value.smtp_code == 554
            with pytest.raises(smtplib.SMTPDataError) as data:
                client.sendmail("a@example.com", ["x@late.example"], MESSAGE)
            assert data.value.smtp_code == 451
            client.sendmail("a@example.com", ["x@fine.example"], MESSAGE)
        assert count(sink) == 1


def test_greylisting_refuses_the_first_attempt_and_accepts_the_retry():
    with faulty("greylist") as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as first:
                client.sendmail("a@example.com", ["b@example.org"], MESSAGE)
            assert first.value.recipients["b@example.org"][0] == 451
        assert count(sink) == 0
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            assert client.sendmail("a@example.com", ["b@example.org"], MESSAGE) == {}
            # A new sender+recipient pair is greylisted on its own.
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("c@example.com", ["b@example.org"], MESSAGE)
        assert count(sink) == 1


def test_greylisting_waits_for_the_retry_delay():
    with faulty("greylist 60") as sink:
        for _ in range(2):
            with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
                with pytest.raises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("a@example.com", ["b@example.org"], MESSAGE)


def test_rate_limit_says_421_and_hangs_up():
    with faulty("rate 3/min") as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            for _ in range(3):
                client.sendmail("a@example.com", ["b@example.org"], MESSAGE)
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@example.com", ["b@example.org"], MESSAGE)
            assert refused.value.smtp_code == 421
            assert refused.value.smtp_error.startswith(b"4.7.0 Rate limit")
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        assert count(sink) == 3


def test_delay_before_a_chosen_reply():
    with faulty("delay data 0.5") as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            client.ehlo()
            started = time.monotonic()
            client.mail("a@example.com")
            client.rcpt("b@example.org")
            assert time.monotonic() - started < 0.5
            started = time.monotonic()
            assert client.data(MESSAGE)[0] == 250
            assert time.monotonic() - started >= 0.45


def test_faults_change_at_run_time_through_the_api(sink):
    url = f"{sink.http_url}/api/v3/chaos"
    assert httpx.get(url).json() == {"jim": None, "faults": [], "seed": None}
    bad = httpx.put(url, json={"faults": ["rcpt nobody"], "seed": 5})
    assert bad.status_code == 400 and "rcpt PATTERN CODE" in bad.json()["error"]
    assert httpx.get(url).json()["seed"] is None  # nothing changed
    rules = ["rcpt *@blocked.example 550 5.7.1 Blocked", "greylist 0"]
    assert httpx.put(url, json={"faults": rules}).json()["faults"] == rules
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.com", ["x@blocked.example"], MESSAGE)
        assert refused.value.recipients["x@blocked.example"][0] == 550
    jim = httpx.put(url, json={"jim": {"RejectAuthChance": 1}}).json()["jim"]
    assert jim["RejectAuthChance"] == 1 and jim["AcceptChance"] == 0.99  # others: defaults
    assert httpx.get(f"{sink.http_url}/api/v2/jim").json() == jim
    assert httpx.delete(url).json() == {"jim": None, "faults": [], "seed": None}
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        assert client.sendmail("a@example.com", ["x@blocked.example"], MESSAGE) == {}
