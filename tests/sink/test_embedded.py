"""The embeddable Sink's test-facing API: messages, wait_for, clear, async use."""
from __future__ import annotations

import asyncio
import re
import smtplib
import threading
import time
from email.message import EmailMessage

import httpx
import pytest

from sink import Sink
from sink.caught import MailNotReceived


def send(sink: Sink, *, to: list[str] | None = None, subject: str = "Hello",
         sender: str = "alice@example.com", header_to: str = "bob@example.com",
         html: str | None = None, attachment: bytes | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Alice <{sender}>"
    message["To"] = header_to
    message["Subject"] = subject
    message.set_content("plain body\nsecond line\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                               filename="data.bin")
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.send_message(message, to_addrs=to or [header_to])
    return message


def test_messages_are_decoded_with_envelope_headers_parts_and_raw(sink):
    send(sink, to=["bob@example.com", "hidden@example.com"], subject="Grüße",
         html="<p>hi</p>", attachment=b"\x00\x01\xffbinary")
    [mail] = sink.messages
    assert mail.mail_from == "alice@example.com"
    assert mail.rcpt_tos == ["bob@example.com", "hidden@example.com"]
    assert mail.envelope.helo and mail.envelope.peer.startswith("127.0.0.1:")
    assert mail.subject == "Grüße"
    assert mail.from_ == "Alice <alice@example.com>"
    assert mail.to == ["bob@example.com"]
    assert mail.header("subject") == "Grüße"
    assert mail.header("X-Missing", "none") == "none"
    assert mail.text == "plain body\nsecond line\n"
    assert mail.html == "<p>hi</p>\n"
    [attachment] = mail.attachments
    assert (attachment.filename, attachment.content_type, attachment.data) == (
        "data.bin", "application/octet-stream", b"\x00\x01\xffbinary")
    raw = httpx.get(f"{sink.http_url}/api/v3/messages/{mail.id}/raw").content
    assert mail.raw == raw


def test_messages_are_in_arrival_order(sink):
    for number in range(3):
        send(sink, subject=f"number {number}")
    assert [m.subject for m in sink.messages] == ["number 0", "number 1", "number 2"]


def test_wait_for_returns_mail_that_already_arrived(sink):
    send(sink, subject="early")
    [mail] = sink.wait_for(subject="early", timeout=0.5)
    assert mail.subject == "early"


def test_wait_for_wakes_up_when_mail_arrives(sink):
    def send_later() -> None:
        time.sleep(0.3)
        send(sink, to=["late@example.com"])

    sender = threading.Thread(target=send_later)
    sender.start()
    started = time.monotonic()
    [mail] = sink.wait_for(to="late@example.com", timeout=10)
    waited = time.monotonic() - started
    sender.join()
    assert mail.rcpt_tos == ["late@example.com"]
    assert waited < 5  # woken by the event, not by the timeout


def test_wait_for_filters(sink):
    send(sink, to=["Bob@Example.com", "carol@example.com"], subject="Order 42 shipped",
         sender="shop@example.com", header_to="Bob <bob@example.com>", html="<b>bold</b>")
    send(sink, subject="Newsletter", sender="news@example.com", header_to="dave@example.com")
    assert len(sink.wait_for(to="bob@example.com", timeout=0.2)) == 1  # case-insensitive
    assert len(sink.wait_for(to="<carol@example.com>", timeout=0.2)) == 1  # envelope only
    assert len(sink.wait_for(to="dave@example.com", timeout=0.2)) == 1  # To header
    assert len(sink.wait_for(from_="news@example.com", timeout=0.2)) == 1
    assert len(sink.wait_for(**{"from": "shop@example.com"}, timeout=0.2)) == 1
    assert len(sink.wait_for(subject="42", timeout=0.2)) == 1  # substring
    assert len(sink.wait_for(subject=re.compile(r"^Newsletter$"), timeout=0.2)) == 1
    assert len(sink.wait_for(html="<b>", timeout=0.2)) == 1
    assert len(sink.wait_for(text="second line", count=2, timeout=0.2)) == 2
    assert len(sink.wait_for(match=lambda m: len(m.rcpt_tos) == 2, timeout=0.2)) == 1
    assert len(sink.wait_for(to=lambda address: address.endswith("@example.com"),
                             count=2, timeout=0.2)) == 2
    with pytest.raises(TypeError, match="unknown mail filter bcc"):
        sink.wait_for(bcc="x@example.com")


def test_wait_for_failure_lists_what_arrived(sink):
    send(sink, to=["bob@example.com"], subject="Receipt")
    started = time.monotonic()
    with pytest.raises(MailNotReceived) as failure:
        sink.wait_for(to="nobody@example.com", subject="Welcome", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    text = str(failure.value)
    assert "expected 1 message matching to='nobody@example.com', subject='Welcome'" in text
    assert "the sink holds 1:" in text
    assert "1. alice@example.com -> bob@example.com  subject 'Receipt'" in text
    assert isinstance(failure.value, AssertionError)


def test_wait_for_count_not_reached(sink):
    send(sink)
    with pytest.raises(MailNotReceived, match=r"expected 2 messages matching any within "
                                              r"0.2 s, got 1"):
        sink.wait_for(count=2, timeout=0.2)


def test_wait_for_with_an_empty_sink_says_so(sink):
    with pytest.raises(MailNotReceived, match=r"\(no mail arrived\)"):
        sink.wait_for(timeout=0.1)


def test_clear_deletes_everything(sink):
    send(sink)
    send(sink)
    assert len(sink.messages) == 2
    sink.clear()
    assert sink.messages == []
    assert httpx.get(f"{sink.http_url}/api/v3/messages").json()["total"] == 0
    send(sink, subject="after")
    assert [m.subject for m in sink.messages] == ["after"]


def test_options_reach_the_server(sink):
    with Sink(max_size=1000, hostname="options.test") as small:
        with smtplib.SMTP(small.smtp_host, small.smtp_port) as client:
            code, reply = client.ehlo()
            assert b"options.test" in reply and b"SIZE 1000" in reply
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("a@example.com", ["b@example.com"], b"x" * 2000)


def test_sync_api_outside_a_running_sink_fails_clearly():
    with pytest.raises(RuntimeError, match="not running"):
        Sink().messages


def test_async_with_sink_on_the_callers_loop():
    async def scenario() -> None:
        async with Sink() as sink:
            await asyncio.to_thread(send, sink, subject="from async")
            [mail] = await sink.await_for(subject="from async")
            assert [m.subject for m in await sink.amessages()] == ["from async"]
            with pytest.raises(RuntimeError, match="use the async methods"):
                sink.messages
            with pytest.raises(MailNotReceived):
                await sink.await_for(subject="never", timeout=0.1)
            await sink.aclear()
            assert await sink.amessages() == []

    asyncio.run(scenario())


def test_async_methods_work_from_another_loop_on_a_threaded_sink(sink):
    async def scenario() -> None:
        await asyncio.to_thread(send, sink, subject="cross-loop")
        [mail] = await sink.await_for(subject="cross-loop")
        await sink.aclear()
        assert await sink.amessages() == []

    asyncio.run(scenario())


def test_start_and_stop_leave_nothing_listening():
    with Sink() as running:
        smtp_port, http_port = running.smtp_port, running.server.http_port
        assert httpx.get(f"{running.http_url}/readyz").status_code == 200
    for port in (smtp_port, http_port):
        with pytest.raises(OSError):
            smtplib.SMTP("127.0.0.1", port, timeout=2)
