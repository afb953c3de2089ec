"""The SMTP side against real clients: smtplib, aiosmtplib, swaks and raw sockets."""
from __future__ import annotations

import asyncio
import smtplib
import subprocess
import threading
import time

import aiosmtplib
import httpx

from sink import Sink
from tests.conftest import require_tool, wait_until
from tests.wire import Wire


def messages(sink: Sink) -> list[dict]:
    return httpx.get(f"{sink.http_url}/api/v3/messages", params={"limit": 1000}).json()["messages"]


def raw_of(sink: Sink, message_id: str) -> bytes:
    response = httpx.get(f"{sink.http_url}/api/v3/messages/{message_id}/raw")
    assert response.status_code == 200
    return response.content


def envelope_of(sink: Sink, message_id: str) -> dict:
    return httpx.get(f"{sink.http_url}/api/v3/messages/{message_id}").json()["envelope"]


def only_raw(sink: Sink) -> bytes:
    listed = messages(sink)
    assert len(listed) == 1, listed
    return raw_of(sink, listed[0]["id"])


def send_wire(sink: Sink, body: bytes, rcpts=("to@example.com",), sender="from@example.com"):
    """Send ``body`` (already dot-stuffed, ending in CRLF.CRLF) and return the final reply."""
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        assert wire.cmd("EHLO test.example").startswith("250")
        assert wire.cmd(f"MAIL FROM:<{sender}>").startswith("250")
        for rcpt in rcpts:
            assert wire.cmd(f"RCPT TO:<{rcpt}>").startswith("250")
        assert wire.cmd("DATA").startswith("354")
        wire.send(body)
        reply = wire.reply()
        wire.cmd("QUIT")
        return reply


# -- the basics, with every client -------------------------------------------

def test_smtplib_send_is_stored_byte_exact(sink):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: plain\r\n\r\nHello\r\n"
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    assert only_raw(sink) == raw


def test_aiosmtplib_send(sink):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: async\r\n\r\nHi\r\n"

    async def send():
        await aiosmtplib.send(raw, sender="a@example.com", recipients=["b@example.com"],
                              hostname=sink.smtp_host, port=sink.smtp_port, start_tls=False)
    asyncio.run(send())
    assert only_raw(sink) == raw


def test_swaks_send(sink):
    swaks = require_tool("swaks")
    result = subprocess.run(
        [swaks, "--server", f"{sink.smtp_host}:{sink.smtp_port}", "--from", "s@example.com",
         "--to", "r1@example.com,r2@example.com", "--header", "Subject: from swaks",
         "--body", ".leading dot\n..two dots\nend", "--helo", "swaks.example"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = messages(sink)
    assert listed[0]["subject"] == "from swaks"
    raw = raw_of(sink, listed[0]["id"])
    assert b"\r\n.leading dot\r\n..two dots\r\nend\r\n" in raw
    envelope = envelope_of(sink, listed[0]["id"])
    assert envelope["helo"] == "swaks.example"
    assert envelope["rcpt_tos"] == ["r1@example.com", "r2@example.com"]


# -- what arrives is what was sent ---------------------------------------------

def test_dot_stuffed_lines_are_unstuffed(sink):
    # On the wire every line starting with "." gets one more; the sink removes it.
    reply = send_wire(sink, b"Subject: dots\r\n\r\n..starts with a dot\r\n..\r\n.x\r\n.\r\n")
    assert reply.startswith("250 2.0.0")
    assert only_raw(sink) == b"Subject: dots\r\n\r\n.starts with a dot\r\n.\r\nx\r\n"


def test_bare_lf_is_kept_and_does_not_end_data(sink):
    # "\n.\n" must not end DATA (SMTP smuggling); only CRLF.CRLF does.
    body = b"Subject: lf\r\n\r\nline one\nline two\n.\nnot the end\r\n.\r\n"
    assert send_wire(sink, body).startswith("250")
    assert only_raw(sink) == b"Subject: lf\r\n\r\nline one\nline two\n.\nnot the end\r\n"


def test_8bit_utf8_headers_and_body(sink):
    raw = ("From: Jörg <j@example.com>\r\nSubject: Grüße aus Köln ✓\r\n\r\n"
           "Ünïcödé body ✓\r\n").encode()
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("j@example.com", ["k@example.com"], raw, mail_options=["BODY=8BITMIME"])
    assert only_raw(sink) == raw
    assert messages(sink)[0]["subject"] == "Grüße aus Köln ✓"


def test_smtputf8_address(sink):
    raw = "From: δοκιμή@παράδειγμα.δοκιμή\r\nSubject: utf8\r\n\r\nx\r\n".encode()
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("δοκιμή@παράδειγμα.δοκιμή", ["用户@例子.广告"], raw,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    listed = messages(sink)
    envelope = envelope_of(sink, listed[0]["id"])
    assert envelope["mail_from"] == "δοκιμή@παράδειγμα.δοκιμή"
    assert envelope["rcpt_tos"] == ["用户@例子.广告"]
    assert envelope["smtputf8"] is True


def test_rfc2047_subject_is_decoded(sink):
    raw = b"Subject: =?utf-8?q?Caf=C3=A9?= =?utf-8?b?4pyT?=\r\nFrom: a@x.example\r\n\r\nx\r\n"
    send_wire(sink, raw + b".\r\n")
    assert messages(sink)[0]["subject"] == "Café✓"


def test_ten_mib_message(sink):
    line = b"0123456789" * 7 + b"\r\n"
    raw = b"Subject: big\r\n\r\n" + line * (10 * 1024 * 1024 // len(line))
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    assert only_raw(sink) == raw


def test_long_data_lines_are_accepted(sink):
    raw = b"Subject: long line\r\n\r\n" + b"x" * 5000 + b"\r\n"
    assert send_wire(sink, raw + b".\r\n").startswith("250")
    assert only_raw(sink) == raw


def test_binary_garbage_in_data_is_stored(sink):
    garbage = bytes(range(256)).replace(b"\r\n", b"") * 4
    raw = b"Subject: junk\r\n\r\n" + garbage + b"\r\n"
    assert send_wire(sink, raw + b".\r\n").startswith("250")
    assert only_raw(sink) == raw


def test_fifty_recipients_with_bcc_only_ones(sink):
    visible = [f"to{i}@example.com" for i in range(10)]
    hidden = [f"bcc{i}@example.com" for i in range(40)]
    raw = f"From: a@example.com\r\nTo: {', '.join(visible)}\r\nSubject: many\r\n\r\nx\r\n".encode()
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        refused = client.sendmail("a@example.com", visible + hidden, raw)
    assert refused == {}
    listed = messages(sink)
    assert listed[0]["to"] == visible
    assert envelope_of(sink, listed[0]["id"])["rcpt_tos"] == visible + hidden
    assert only_raw(sink) == raw  # BCC recipients are only in the envelope


def test_null_sender_is_accepted(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        assert wire.cmd("MAIL FROM:<>").startswith("250 2.1.0")
        assert wire.cmd("RCPT TO:<postmaster@example.com>").startswith("250 2.1.5")
        assert wire.cmd("DATA").startswith("354")
        wire.send(b"Subject: bounce\r\n\r\nDSN\r\n.\r\n")
        assert wire.reply().startswith("250")
    assert envelope_of(sink, messages(sink)[0]["id"])["mail_from"] == ""


# -- protocol behaviour -------------------------------------------------------

def test_ehlo_advertises_extensions(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        assert wire.greeting.startswith("220 ")
        reply = wire.cmd("EHLO client.example")
    for extension in ("SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"):
        assert extension in reply, reply


def test_minimum_command_set(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        assert wire.cmd("HELO client.example").startswith("250")
        assert wire.cmd("NOOP").startswith("250 2.0.0")
        assert wire.cmd("VRFY someone@example.com").startswith("252")
        assert wire.cmd("HELP").startswith("250")
        assert wire.cmd("RSET").startswith("250 2.0.0")
        assert wire.cmd("FROBNICATE").startswith("500 5.5.1")
        assert wire.cmd("QUIT").startswith("221 2.0.0")


def test_pipelined_commands(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO pipe.example")
        # Everything in one write, as a pipelining client does; then the body.
        wire.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                  b"RCPT TO:<c@example.com>\r\nDATA\r\n")
        replies = [wire.reply() for _ in range(4)]
        assert [r[:3] for r in replies] == ["250", "250", "250", "354"]
        # Body, final dot, and the next transaction pipelined behind it.
        wire.send(b"Subject: one\r\n\r\n1\r\n.\r\nMAIL FROM:<a@example.com>\r\n"
                  b"RCPT TO:<d@example.com>\r\nDATA\r\n")
        replies = [wire.reply() for _ in range(4)]
        assert [r[:3] for r in replies] == ["250", "250", "250", "354"]
        wire.send(b"Subject: two\r\n\r\n2\r\n.\r\nQUIT\r\n")
        assert wire.reply().startswith("250")
        assert wire.reply().startswith("221")
    assert sorted(m["subject"] for m in messages(sink)) == ["one", "two"]


def test_rset_mid_transaction_discards_it(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        wire.cmd("MAIL FROM:<a@example.com>")
        wire.cmd("RCPT TO:<dropped@example.com>")
        assert wire.cmd("RSET").startswith("250")
        assert wire.cmd("DATA").startswith("503 5.5.1")
        wire.cmd("MAIL FROM:<a@example.com>")
        wire.cmd("RCPT TO:<kept@example.com>")
        wire.cmd("DATA")
        wire.send(b"Subject: after rset\r\n\r\nx\r\n.\r\n")
        assert wire.reply().startswith("250")
    listed = messages(sink)
    assert len(listed) == 1
    assert envelope_of(sink, listed[0]["id"])["rcpt_tos"] == ["kept@example.com"]


def test_bad_address_syntax():
    with Sink() as sink, Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        assert wire.cmd("MAIL FROM:<not an address>")[:3] in ("501", "553")
        assert wire.cmd("MAIL FROM:nobrackets and spaces")[:3] in ("501", "553")
        assert wire.cmd("MAIL TO:<a@example.com>").startswith("501 5.5.4")
        assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
        assert wire.cmd("RCPT TO:<>")[:3] in ("501", "553")
        assert wire.cmd("RCPT TO:<ok@example.com>").startswith("250")


def test_size_limit_on_mail_and_on_data_keeps_session_usable():
    with Sink(max_size=2000) as sink, Wire(sink.smtp_host, sink.smtp_port) as wire:
        assert "SIZE 2000" in wire.cmd("EHLO x")
        assert wire.cmd("MAIL FROM:<a@example.com> SIZE=5000").startswith("552 5.3.4")
        assert wire.cmd("MAIL FROM:<a@example.com> SIZE=100").startswith("250")
        wire.cmd("RCPT TO:<b@example.com>")
        wire.cmd("DATA")
        wire.send(b"Subject: too big\r\n\r\n" + b"y" * 3000 + b"\r\n.\r\n")
        assert wire.reply().startswith("552 5.3.4")
        # The session is still usable.
        wire.cmd("MAIL FROM:<a@example.com>")
        wire.cmd("RCPT TO:<b@example.com>")
        wire.cmd("DATA")
        wire.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
        assert wire.reply().startswith("250")
        assert [m["subject"] for m in messages(sink)] == ["small"]


def test_command_line_too_long(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        assert wire.cmd("MAIL FROM:<" + "a" * 2000 + "@example.com>").startswith("500 5.5.2")
        assert wire.cmd("NOOP").startswith("250")


def test_binary_garbage_commands(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        reply = wire.cmd(b"\x00\xff\xfe\x80garbage")
        assert reply[:1] == "5" and reply[4:5] == "5", reply
        assert wire.cmd("NOOP").startswith("250")
    # and the server still serves others
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        assert client.noop()[0] == 250


def test_recipient_cap():
    with Sink(max_recipients=3) as sink, Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        wire.cmd("MAIL FROM:<a@example.com>")
        for i in range(3):
            assert wire.cmd(f"RCPT TO:<r{i}@example.com>").startswith("250")
        assert wire.cmd("RCPT TO:<r4@example.com>").startswith("452 4.5.3")


def test_client_dropping_mid_data_stores_nothing_and_next_client_is_served(sink):
    wire = Wire(sink.smtp_host, sink.smtp_port)
    wire.cmd("EHLO x")
    wire.cmd("MAIL FROM:<a@example.com>")
    wire.cmd("RCPT TO:<b@example.com>")
    wire.cmd("DATA")
    wire.send(b"Subject: half\r\n\r\nhalf a message")
    wire.close()
    raw = b"Subject: whole\r\n\r\nwhole\r\n"
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    assert only_raw(sink) == raw


def test_idle_client_gets_421():
    with Sink(idle_timeout=0.5) as sink, Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        started = time.monotonic()
        assert wire.reply().startswith("421 4.4.2")
        assert 0.3 < time.monotonic() - started < 5
        assert wire.closed_by_server()


def test_connection_cap_refuses_new_clients_only():
    with Sink(max_connections=2) as sink:
        first = Wire(sink.smtp_host, sink.smtp_port)
        second = Wire(sink.smtp_host, sink.smtp_port)
        third = Wire(sink.smtp_host, sink.smtp_port)
        assert third.greeting.startswith("421 4.7.0")
        assert third.closed_by_server()
        # Existing sessions are unaffected.
        assert first.cmd("EHLO a").startswith("250")
        assert second.cmd("NOOP").startswith("250")
        first.cmd("QUIT")
        first.close()
        wait_until(lambda: len(sink.server.tracker.sessions) < 2, what="the slot to free up")
        fourth = Wire(sink.smtp_host, sink.smtp_port)
        assert fourth.greeting.startswith("220")
        for wire in (second, third, fourth):
            wire.close()


def test_concurrent_senders_all_stored_none_twice(sink):
    errors: list[BaseException] = []

    def sender(worker: int) -> None:
        try:
            with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
                for n in range(50):
                    raw = f"Subject: w{worker}-m{n}\r\n\r\nbody\r\n".encode()
                    client.sendmail("a@example.com", ["b@example.com"], raw)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    subjects = [m["subject"] for m in messages(sink)]
    assert len(subjects) == 1000
    assert sorted(subjects) == sorted({f"w{w}-m{n}" for w in range(20) for n in range(50)})


def test_retention_keeps_newest():
    with Sink(max_messages=5) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            for n in range(12):
                client.sendmail("a@example.com", ["b@example.com"], f"Subject: {n}\r\n\r\nx\r\n")
        listing = httpx.get(f"{sink.http_url}/api/v3/messages").json()
        assert listing["total"] == 5
        assert [m["subject"] for m in listing["messages"]] == ["11", "10", "9", "8", "7"]


def test_large_message_dropped_mid_data_leaves_no_file(sink):
    import os

    directory = sink.server.store.files.directory
    wire = Wire(sink.smtp_host, sink.smtp_port)
    wire.cmd("EHLO x")
    wire.cmd("MAIL FROM:<a@example.com>")
    wire.cmd("RCPT TO:<b@example.com>")
    wire.cmd("DATA")
    wire.send(b"Subject: big and cut\r\n\r\n" + (b"y" * 78 + b"\r\n") * 40000)
    wait_until(lambda: any(name.endswith(".part") for name in os.listdir(directory)),
               what="the message to be spooled to disk")
    wire.close()
    wait_until(lambda: os.listdir(directory) == [], what="the spool file to be removed")
    assert messages(sink) == []


def test_large_message_over_the_size_limit_leaves_no_file():
    import os

    with Sink(max_size=2 * 1024 * 1024) as sink, Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        wire.cmd("MAIL FROM:<a@example.com>")
        wire.cmd("RCPT TO:<b@example.com>")
        wire.cmd("DATA")
        wire.send(b"Subject: too big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 40000 + b".\r\n")
        assert wire.reply().startswith("552 5.3.4")
        assert os.listdir(sink.server.store.files.directory) == []


def test_non_utf8_address_is_refused_and_ingest_goes_on(sink):
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd(b"EHLO h\xffst.example")
        assert wire.cmd(b"MAIL FROM:<\xff@example.com>").startswith("553 5.6.7")
        assert wire.cmd("MAIL FROM:<a@example.com>").startswith("250")
        assert wire.cmd(b"RCPT TO:<b\xfe@example.com>").startswith("553 5.6.7")
        assert wire.cmd("RCPT TO:<b@example.com>").startswith("250")
        wire.cmd("DATA")
        wire.send(b"Subject: after junk\r\n\r\nx\r\n.\r\n")
        assert wire.reply().startswith("250")
    listed = messages(sink)  # the writer and indexer are still alive
    assert [m["subject"] for m in listed] == ["after junk"]
    assert envelope_of(sink, listed[0]["id"])["helo"] == "h\ufffdst.example"
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], "Subject: next\r\n\r\nx\r\n")
    assert len(messages(sink)) == 2


def test_spool_write_failure_is_452_and_the_body_never_runs_as_commands(sink):
    import shutil

    shutil.rmtree(sink.server.store.files.directory)  # stands in for a full disk
    body = b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 20000 + b"QUIT\r\n" * 3
    with Wire(sink.smtp_host, sink.smtp_port) as wire:
        wire.cmd("EHLO x")
        wire.cmd("MAIL FROM:<a@example.com>")
        wire.cmd("RCPT TO:<b@example.com>")
        wire.cmd("DATA")
        wire.send(body + b".\r\n")
        assert wire.reply().startswith("452 4.3.1")
        assert wire.cmd("NOOP").startswith("250")  # not closed by a smuggled QUIT
        assert wire.cmd("DATA").startswith("503")  # the transaction was reset
    assert messages(sink) == []
