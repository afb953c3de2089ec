"""probe.connect()/send() end to end against aiosmtpd servers started by the test."""
from __future__ import annotations

import asyncio
import base64
import email
import socket
from email import policy

import pytest

import probe
from probe.client import _authenticate, _Opened
from probe.results import Capabilities
from probe.session import Session, is_loopback
from probe_servers import PASSWORD, TOKEN, USER, AiosmtpdServer, make_certs


def secrets_absent(text: str) -> None:
    """Neither the password nor any base64 carrying it may be in a transcript."""
    assert PASSWORD not in text
    raw = PASSWORD.encode()
    for blob in (raw, b"\0" + USER.encode() + b"\0" + raw,
                 f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode()):
        assert base64.b64encode(blob).decode() not in text
    assert TOKEN not in text


def parse(raw: bytes) -> email.message.EmailMessage:
    # LF line endings, so that decoded text compares with what was given
    return email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default)


def msg(**fields) -> probe.Message:
    fields.setdefault("sender", "alice@example.com")
    fields.setdefault("to", ["bob@example.com"])
    fields.setdefault("subject", "hello")
    fields.setdefault("text", "hi there\n")
    return probe.Message(**fields)


# -- TLS modes -----------------------------------------------------------------
def test_plain_connect_reports_greeting_capabilities_and_timings(smtpd):
    server = smtpd()
    result = probe.connect(server.address, tls="none")
    assert result.greeting.code == 220 and "test.local" in result.greeting.raw
    assert result.capabilities.size == 33554432
    assert result.capabilities.to_dict()["SIZE"] == 33554432
    assert result.capabilities.has("PIPELINING") and result.capabilities.has("8BITMIME")
    assert result.tls is None and result.address == "127.0.0.1"
    assert {"connect", "greeting", "ehlo", "quit", "total"} <= set(result.timings.to_dict())
    assert result.rtt_ms > 0
    lines = result.transcript.lines()
    assert lines[-2] == " -> QUIT" and lines[-1].startswith("<-  221")


def test_starttls_verified_with_ca_file_and_ehlo_again(smtpd, certs):
    server = smtpd(tls="starttls")
    result = probe.connect(server.address, tls="starttls", ca_file=str(certs.ca))
    tls = result.tls
    assert tls.mode == "starttls" and tls.verified and tls.verify_error is None
    assert tls.protocol.startswith("TLS") and tls.cipher and tls.bits
    assert tls.certificate.subject == "CN=localhost"
    assert tls.certificate.issuer == "CN=mailsink test CA"
    assert "DNS:localhost" in tls.certificate.sans and "IP:127.0.0.1" in tls.certificate.sans
    assert tls.certificate.not_after > "2000"
    sent = [line for line in result.transcript.lines() if "EHLO" in line]
    assert sent[0].startswith(" -> EHLO") and sent[1].startswith(" ~> EHLO")
    assert not result.capabilities.has("STARTTLS")   # the capabilities from after TLS


def test_starttls_required_but_not_offered_is_a_tls_error(smtpd):
    server = smtpd()
    with pytest.raises(probe.TLSError) as caught:
        probe.connect(server.address, tls="starttls")
    assert caught.value.stage == "starttls"
    assert "does not offer STARTTLS" in caught.value.message


def test_auto_uses_starttls_when_offered_and_plain_when_not(smtpd, certs):
    with_tls = smtpd(tls="starttls")
    assert probe.connect(with_tls.address, ca_file=str(certs.ca)).tls.mode == "starttls"
    plain = smtpd()
    result = probe.connect(plain.address)
    assert result.tls is None
    assert "does not offer STARTTLS" in str(result.transcript)


def test_implicit_tls_send(smtpd, certs):
    server = smtpd(tls="implicit")
    result = probe.send(msg(), server.address, tls="implicit", ca_file=str(certs.ca))
    assert result.delivered and result.tls.mode == "implicit" and result.tls.verified
    assert server.messages[0].tls
    assert result.transcript.lines()[2].startswith("=== TLS started")


def test_auto_is_implicit_tls_on_port_465(certs, loopback_465):
    from probe_servers import LoopThread, RecordingHandler, server_context
    from aiosmtpd.smtp import SMTP
    thread = LoopThread()

    async def start():
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: SMTP(RecordingHandler(), loop=loop,
                                                     hostname="test.local"),
                                        loopback_465, 465, ssl=server_context(certs))
    server = thread.call(start())
    try:
        result = probe.connect(f"{loopback_465}:465", tls="auto", ca_file=str(certs.ca))
        assert result.port == 465 and result.tls.mode == "implicit"
    finally:
        async def stop():
            server.close()
        thread.call(stop())
        thread.stop()


def test_unverified_certificate_is_reported_by_connect_and_refused_by_send(smtpd, certs):
    server = smtpd(tls="starttls", auth=True)
    result = probe.connect(server.address, auth=probe.Auth(USER, PASSWORD))
    assert result.tls.verified is False
    assert "local issuer" in result.tls.verify_error
    assert result.tls.certificate.subject == "CN=localhost"
    assert result.authenticated is None   # no credentials over an unverified connection
    assert not result.ok
    with pytest.raises(probe.TLSError) as caught:
        probe.send(msg(), server.address, auth=probe.Auth(USER, PASSWORD))
    assert caught.value.verify_error and not server.messages
    assert probe.send(msg(), server.address, insecure=True).delivered
    assert probe.send(msg(), server.address, ca_file=str(certs.ca)).tls.verified


def test_wrong_host_name_does_not_verify(tmp_path):
    other = make_certs(tmp_path, names=("other.example",), ips=())
    server = AiosmtpdServer(other, tls="implicit")
    try:
        with pytest.raises(probe.TLSError) as caught:
            probe.send(msg(), server.address, tls="implicit", ca_file=str(other.ca))
        assert "mismatch" in caught.value.message and not server.messages
    finally:
        server.close()


# -- AUTH ------------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_every_password_mechanism_over_starttls(smtpd, certs, mechanism):
    server = smtpd(tls="starttls", auth=True, auth_required=True, require_tls_for_auth=True)
    result = probe.send(msg(), server.address, ca_file=str(certs.ca),
                        auth=probe.Auth(USER, PASSWORD, mechanism))
    assert result.authenticated and result.auth_mechanism == mechanism
    assert server.handler.mechanisms_used == [mechanism]
    assert server.messages[0].login == USER.encode()
    text = str(result.transcript)
    secrets_absent(text)
    secrets_absent(str(result.to_dict()))
    assert f"AUTH {mechanism}" in text
    if mechanism == "LOGIN":
        assert f"(user {USER})" in text


def test_xoauth2_with_a_token(smtpd, certs):
    server = smtpd(tls="starttls", auth=True)
    result = probe.send(msg(), server.address, ca_file=str(certs.ca),
                        auth=probe.Auth(USER, TOKEN, "xoauth2"))
    assert result.auth_mechanism == "XOAUTH2" and server.handler.mechanisms_used == ["XOAUTH2"]
    secrets_absent(str(result.transcript))


def test_xoauth2_failure_ends_the_exchange_and_is_an_auth_error(smtpd, certs):
    server = smtpd(tls="starttls", auth=True)
    with pytest.raises(probe.AuthError) as caught:
        probe.send(msg(), server.address, ca_file=str(certs.ca),
                   auth=probe.Auth(USER, "wrong-token", "XOAUTH2"))
    assert caught.value.code == 535
    assert caught.value.transcript.lines()[-2] == " ~> QUIT"


def test_mechanism_is_chosen_from_what_the_server_offers(smtpd, certs):
    server = smtpd(tls="starttls", auth=True)
    result = probe.connect(server.address, ca_file=str(certs.ca), auth=probe.Auth(USER, PASSWORD))
    assert result.authenticated and result.auth_mechanism == "PLAIN"


def test_wrong_password_is_an_auth_error_with_the_code(smtpd, certs):
    server = smtpd(tls="starttls", auth=True)
    with pytest.raises(probe.AuthError) as caught:
        probe.send(msg(), server.address, ca_file=str(certs.ca),
                   auth=probe.Auth(USER, "not-it", "LOGIN"))
    error = caught.value
    assert error.code == 535 and error.enhanced_code == "5.7.8" and error.stage == "auth"
    assert error.message.startswith("AUTH LOGIN failed: 535")
    assert not server.messages
    assert "not-it" not in str(error.transcript)


def test_mechanism_not_offered(smtpd, certs):
    server = smtpd(tls="starttls")
    with pytest.raises(probe.AuthError, match="does not offer AUTH"):
        probe.connect(server.address, ca_file=str(certs.ca), auth=probe.Auth(USER, PASSWORD))


def test_plaintext_auth_allowed_on_loopback(smtpd):
    server = smtpd(auth=True)
    result = probe.send(msg(), server.address, tls="none",
                        auth=probe.Auth(USER, PASSWORD, "LOGIN"))
    assert result.authenticated and result.tls is None


def test_plaintext_auth_refused_to_a_remote_host_before_anything_is_sent():
    # The guard runs before any I/O: a session that never connected shows it.
    session = Session()
    session.peer = "192.0.2.25"
    with pytest.raises(probe.AuthError, match="unencrypted"):
        asyncio.run(_authenticate(session, _Opened(), probe.Auth(USER, PASSWORD), False))
    assert session.transcript.entries == []
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.9")
    assert not is_loopback("192.0.2.25") and not is_loopback(None)


def test_old_auth_equals_form_is_understood():
    caps = Capabilities.parse(probe.Reply(250, ["mx", "AUTH=PLAIN LOGIN", "AUTH CRAM-MD5",
                                                "SIZE", "8bitmime"]))
    assert caps.auth == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert caps.size == 0 and caps.has("8BITMIME")


# -- transactions ------------------------------------------------------------------
def test_three_recipients_pipelined_in_five_round_trips(smtpd):
    server = smtpd()
    message = msg(to=["a@example.com", "b@example.com"], bcc=["c@example.com"])
    result = probe.send(message, server.address, tls="none")
    assert result.pipelined and result.round_trips == 5
    assert result.accepted == ["a@example.com", "b@example.com", "c@example.com"]
    assert result.queue_id == "TEST123"
    assert server.messages[0].rcpt_tos == result.accepted
    lines = result.transcript.lines()
    start = lines.index(next(line for line in lines if line.startswith(" -> MAIL")))
    assert [line[:9] for line in lines[start:start + 5]] == [" -> MAIL ", " -> RCPT ", " -> RCPT ",
                                                             " -> RCPT ", " -> DATA"]


def test_pipelining_off_and_not_offered(smtpd):
    server = smtpd()
    message = msg(to=["a@example.com", "b@example.com", "c@example.com"])
    off = probe.send(message, server.address, tls="none", pipelining="off")
    assert not off.pipelined and off.round_trips == 9
    plain = smtpd(pipelining=False)
    auto = probe.send(message, plain.address, tls="none")
    assert not auto.pipelined
    forced = probe.send(message, plain.address, tls="none", pipelining="on")
    assert forced.pipelined and forced.round_trips == 5
    assert len(server.messages) == 1 and len(plain.messages) == 2


def test_size_declared_and_8bitmime_for_8bit_raw(smtpd):
    server = smtpd()
    raw = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n" \
          "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n".encode()
    result = probe.send(probe.RawMessage(raw, "a@example.com", ["b@example.com"]),
                        server.address, tls="none")
    received = server.messages[0]
    assert f"SIZE={len(raw)}" in received.mail_options and "BODY=8BITMIME" in received.mail_options
    assert received.content == raw and result.size == len(raw)


def test_dot_stuffing_keeps_leading_dots_intact(smtpd):
    server = smtpd()
    body = ".\n..\n.leading dot\n. space\n...\nend\n.\n"
    probe.send(msg(text=body), server.address, tls="none")
    received = parse(server.messages[0].content)
    assert received.get_content() == body
    raw = b"Subject: dots\n\n.\n..x\r\n.y\rlast"     # mixed line endings, no final newline
    probe.send(probe.RawMessage(raw, "a@example.com", ["b@example.com"]), server.address,
               tls="none")
    assert server.messages[1].content == b"Subject: dots\r\n\r\n.\r\n..x\r\n.y\r\nlast\r\n"


def test_composed_message_headers_bcc_and_attachments(smtpd):
    server = smtpd()
    attachment = probe.Attachment("résumé.bin", bytes(range(256)))
    message = probe.Message(
        sender="Jörg Müller <jorg@example.com>", to=["Zoë <zoe@example.com>"],
        cc=["carol@example.com"], bcc=["hidden@example.com"], reply_to=["replies@example.com"],
        subject="Grüße ☃ " + " ".join(["long"] * 30), text="plain ünïcode\n",
        html="<p>ünïcode</p>",
        attachments=[attachment, probe.Attachment("notes.txt", b"a text file\n")],
        headers=[("X-Test", "yes"), ("X-Note", "naïve")])
    result = probe.send(message, server.address, tls="none")
    received = server.messages[0]
    assert received.rcpt_tos == ["zoe@example.com", "carol@example.com", "hidden@example.com"]
    assert received.mail_from == "jorg@example.com"
    assert received.content.isascii()                   # 7-bit clean: no 8BITMIME needed
    assert "BODY=8BITMIME" not in received.mail_options
    parsed = parse(received.content)
    assert parsed["From"] == "Jörg Müller <jorg@example.com>"
    assert parsed["To"] == "Zoë <zoe@example.com>" and parsed["Cc"] == "carol@example.com"
    assert parsed["Subject"] == "Grüße ☃ " + " ".join(["long"] * 30)
    assert parsed["Reply-To"] == "replies@example.com"
    assert "Bcc" not in parsed and b"hidden" not in received.content
    assert parsed["Date"] and parsed["Message-ID"].endswith("@example.com>")
    assert parsed["X-Test"] == "yes" and parsed["X-Note"] == "naïve"
    assert received.content.count(b"MIME-Version") == 1
    assert parsed.get_body(("plain",)).get_content() == "plain ünïcode\n"
    assert parsed.get_body(("html",)).get_content() == "<p>ünïcode</p>\n"
    files = {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}
    assert files == {"résumé.bin": bytes(range(256)), "notes.txt": "a text file\n"}
    assert result.delivered


def test_custom_header_replaces_a_default_one(smtpd):
    server = smtpd()
    probe.send(msg(headers=[("Message-ID", "<fixed@example.com>")]), server.address, tls="none")
    parsed = parse(server.messages[0].content)
    assert parsed.get_all("Message-ID") == ["<fixed@example.com>"]


def test_smtputf8_address(smtpd):
    server = smtpd()
    result = probe.send(msg(to=["jörg@exämple.com"]), server.address, tls="none")
    received = server.messages[0]
    assert "SMTPUTF8" in received.mail_options and received.rcpt_tos == ["jörg@exämple.com"]
    assert parse(received.content)["To"] == "jörg@exämple.com"
    assert result.delivered


def test_smtputf8_needed_but_not_offered_is_a_clear_error(smtpd):
    server = smtpd(smtputf8=False)
    with pytest.raises(probe.RejectedError, match="needs SMTPUTF8") as caught:
        probe.send(msg(to=["jörg@example.com"]), server.address, tls="none")
    assert not server.messages
    assert "RSET" in caught.value.transcript and "QUIT" in caught.value.transcript


def test_partial_recipient_rejection(smtpd):
    server = smtpd()
    message = msg(to=["a@example.com", "reject-me@example.com", "b@example.com"])
    for mode in ("on", "off"):
        result = probe.send(message, server.address, tls="none", pipelining=mode)
        assert result.delivered
        assert result.accepted == ["a@example.com", "b@example.com"]
        [rejected] = result.rejected
        assert rejected.address == "reject-me@example.com"
        assert rejected.reply.code == 550 and rejected.reply.enhanced_code == "5.1.1"
        assert "user unknown" in rejected.reply.text
        assert server.messages[-1].rcpt_tos == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("mode", ["on", "off"])
def test_all_recipients_rejected_rsets_and_quits(smtpd, mode):
    server = smtpd()
    with pytest.raises(probe.RejectedError) as caught:
        probe.send(msg(to=["reject1@example.com", "reject2@example.com"]), server.address,
                   tls="none", pipelining=mode)
    error = caught.value
    assert error.stage == "rcpt" and error.code == 550 and error.enhanced_code == "5.1.1"
    assert error.message.startswith("RCPT TO failed: 550 5.1.1")
    assert [r.reply.code for r in error.result.recipients] == [550, 550]
    sent = [line for line in error.transcript.lines() if line.startswith(" -> ")]
    assert sent[-2:] == [" -> RSET", " -> QUIT"]
    assert not server.messages


def test_quit_after_rcpt_sends_no_data(smtpd):
    server = smtpd()
    result = probe.send(msg(), server.address, tls="none", quit_after="rcpt")
    assert result.stopped_after == "rcpt" and not result.delivered
    assert result.accepted == ["bob@example.com"]
    assert "DATA" not in result.transcript and not server.messages


def test_helo_name_and_fqdn_default(smtpd):
    server = smtpd()
    result = probe.send(msg(), server.address, tls="none", ehlo="client.example.org")
    assert " -> EHLO client.example.org" in result.transcript.lines()


def test_connection_refused_names_the_stage():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()   # nothing listens there now
    with pytest.raises(probe.ConnectError) as caught:
        probe.connect(f"127.0.0.1:{port}")
    assert caught.value.stage == "connect" and "refused" in caught.value.message.lower()


def test_control_characters_never_reach_the_wire(smtpd):
    server = smtpd()
    with pytest.raises(probe.UsageError):
        probe.send(msg(sender="a@example.com\r\nRCPT TO:<evil@example.com>"), server.address)
    with pytest.raises(probe.UsageError):
        probe.send(msg(), server.address, tls="none", ehlo="x\r\nMAIL FROM:<evil@example.com>")
    assert not server.messages


def test_async_api_inside_a_loop(smtpd):
    server = smtpd()

    async def main():
        with pytest.raises(RuntimeError, match="async_"):
            probe.connect(server.address)
        info, result = await asyncio.gather(
            probe.async_connect(server.address, tls="none"),
            probe.async_send(msg(), server.address, tls="none"))
        return info, result
    info, result = asyncio.run(main())
    assert info.greeting.code == 220 and result.delivered


def test_results_are_json_serialisable(smtpd, certs):
    import json
    server = smtpd(tls="starttls")
    info = probe.connect(server.address, ca_file=str(certs.ca))
    sent = probe.send(msg(), server.address, ca_file=str(certs.ca))
    for data in (info.to_dict(), sent.to_dict()):
        json.dumps(data)
    assert sent.to_dict()["tls"]["certificate"]["subject"] == "CN=localhost"


def test_against_the_sink(sink, sink_ca):
    import httpx
    body = ".starts with a dot\n..two\nok\n"
    result = probe.send(msg(to=["x@example.com", "y@example.com"], bcc=["z@example.com"],
                            text=body),
                        f"{sink.smtp_host}:{sink.smtp_port}", ca_file=sink_ca)
    assert result.delivered and result.pipelined and result.round_trips == 7  # + STARTTLS, EHLO
    assert result.tls.mode == "starttls" and result.tls.verified and result.queue_id
    listing = httpx.get(f"{sink.http_url}/api/v3/messages").json()
    detail_id = listing["messages"][0]["id"]
    raw = httpx.get(f"{sink.http_url}/api/v3/messages/{detail_id}/raw").content
    assert parse(raw).get_content() == body
    detail = httpx.get(f"{sink.http_url}/api/v3/messages/{detail_id}").json()
    assert detail["envelope"]["rcpt_tos"] == ["x@example.com", "y@example.com", "z@example.com"]
    info = probe.connect(sink.smtp_host, sink.smtp_port, tls="none")
    assert info.capabilities.has("PIPELINING") and info.capabilities.size == sink.settings.max_size
    assert info.capabilities.has("STARTTLS")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_sink_tls_modes_and_auth(tmp_path, mechanism):
    from sink import Sink
    import httpx
    with Sink(smtps_port=0, auth="any", require_auth=True) as running:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(running.ca_pem)
        credentials = probe.Auth("sink-user", "sink-pässword", mechanism)
        for port, tls in ((running.smtp_port, "starttls"), (running.smtps_port, "implicit")):
            result = probe.send(msg(subject=tls), f"{running.smtp_host}:{port}", tls=tls,
                                ca_file=str(ca), auth=credentials)
            assert result.tls.mode == tls and result.auth_mechanism == mechanism
            assert "sink-pässword" not in str(result.transcript)
        with pytest.raises(probe.RejectedError) as caught:
            probe.send(msg(), f"{running.smtp_host}:{running.smtp_port}", ca_file=str(ca))
        assert caught.value.code == 530
        messages = httpx.get(f"{running.http_url}/api/v3/messages").json()["messages"]
        for summary in messages:
            envelope = httpx.get(f"{running.http_url}/api/v3/messages/{summary['id']}").json()[
                "envelope"]
            assert envelope["auth_user"] == "sink-user"
            assert envelope["auth_mechanism"] == mechanism and envelope["tls_version"]
