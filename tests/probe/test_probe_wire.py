"""The probe against scripted servers that misbehave on purpose: the wire-level rules."""
from __future__ import annotations

import asyncio
import time

import pytest

import probe
from probe_servers import server_context

EHLO_REPLY = b"250-test.local\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


async def lines(reader: asyncio.StreamReader):
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.rstrip(b"\r\n")


def msg() -> probe.Message:
    return probe.Message("a@example.com", to=["b@example.com"], subject="s", text="t")


def test_multiline_reply_ends_only_on_a_final_line(scripted):
    async def script(reader, writer):
        writer.write(b"220-first line of a long greeting\r\n220-250 this is not the end\r\n"
                     b"220 ready\r\n")
        async for line in lines(reader):
            if line.startswith(b"EHLO"):
                # a continuation line whose text looks like a final line must not end it
                writer.write(b"250-test.local\r\n250-XSTRANGE 250 ok\r\n250-SIZE 1000\r\n"
                             b"250 AUTH=PLAIN LOGIN\r\n")
            elif line == b"QUIT":
                writer.write(b"221 bye\r\n")
                return
    server = scripted(script)
    result = probe.connect(server.address, tls="none")
    assert result.greeting.lines == ["first line of a long greeting", "250 this is not the end",
                                     "ready"]
    assert result.capabilities.size == 1000 and result.capabilities.auth == ["PLAIN", "LOGIN"]
    assert result.capabilities.extensions["XSTRANGE"] == ["250", "ok"]


def test_greeting_timeout_names_the_stage_and_closes(scripted):
    async def script(reader, writer):
        await asyncio.sleep(5)   # never greets
    server = scripted(script)
    start = time.monotonic()
    with pytest.raises(probe.ProbeTimeout) as caught:
        probe.connect(server.address, tls="none", timeout=0.3)
    assert time.monotonic() - start < 2
    assert caught.value.stage == "greeting" and "greeting" in caught.value.message
    assert caught.value.transcript.lines()[-1].startswith("*** Timeout")


def test_timeout_in_the_transaction_and_no_late_reply_reuse(scripted):
    async def script(reader, writer):
        writer.write(b"220 hi\r\n")
        async for line in lines(reader):
            if line.startswith(b"EHLO"):
                writer.write(b"250-test.local\r\n250 8BITMIME\r\n")
            elif line.startswith(b"MAIL"):
                await asyncio.sleep(1.0)   # answers, but too late
                writer.write(b"250 late\r\n")
            else:
                writer.write(b"250 ok\r\n")
    server = scripted(script)
    timeouts = probe.Timeouts(command=0.3)
    with pytest.raises(probe.ProbeTimeout) as caught:
        probe.send(msg(), server.address, tls="none", timeout=timeouts)
    error = caught.value
    assert error.stage == "mail" and "MAIL FROM" in error.message
    # the connection was dropped: no RCPT or QUIT went out after the timeout
    assert not any("RCPT" in line or "QUIT" in line for line in error.transcript.lines())


def test_helo_fallback_when_ehlo_is_refused(scripted):
    async def script(reader, writer):
        writer.write(b"220 old server\r\n")
        async for line in lines(reader):
            if line.startswith(b"EHLO"):
                writer.write(b"502 5.5.1 command not implemented\r\n")
            elif line.startswith(b"HELO"):
                writer.write(b"250 old.example\r\n")
            elif line == b"DATA":
                writer.write(b"354 go\r\n")
                async for body in lines(reader):
                    if body == b".":
                        break
                writer.write(b"250 queued as OLD1\r\n")
            elif line == b"QUIT":
                writer.write(b"221 bye\r\n")
                return
            else:
                writer.write(b"250 ok\r\n")
    server = scripted(script)
    result = probe.send(msg(), server.address, tls="none")
    assert result.delivered and result.queue_id == "OLD1"
    assert not result.pipelined                     # no extensions after HELO
    assert "SIZE=" not in str(result.transcript)
    assert probe.connect(server.address, tls="none").helo_fallback


def test_bad_greeting_is_a_connection_error(scripted):
    async def script(reader, writer):
        writer.write(b"554 5.7.1 no service for you\r\n")
        async for line in lines(reader):
            if line == b"QUIT":
                writer.write(b"221 bye\r\n")
    server = scripted(script)
    with pytest.raises(probe.ConnectError) as caught:
        probe.connect(server.address, tls="none")
    assert caught.value.message == "Invalid SMTP greeting: 554 5.7.1 no service for you"
    assert caught.value.code == 554 and caught.value.stage == "greeting"


def test_malformed_and_oversized_replies_are_protocol_errors(scripted):
    async def garbage(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n")
        await asyncio.sleep(1)
    with pytest.raises(probe.ProtocolError, match="Malformed reply"):
        probe.connect(scripted(garbage).address, tls="none")

    async def huge(reader, writer):
        writer.write(b"220-" + b"x" * 9000 + b"\r\n220 ok\r\n")
        await asyncio.sleep(1)
    with pytest.raises(probe.ProtocolError, match="longer than"):
        probe.connect(scripted(huge).address, tls="none")

    async def endless(reader, writer):
        for _ in range(100):
            writer.write(b"220-" + b"y" * 1000 + b"\r\n")
        await asyncio.sleep(1)
    with pytest.raises(probe.ProtocolError, match="longer than 32768"):
        probe.connect(scripted(endless).address, tls="none")

    async def switching(reader, writer):
        writer.write(b"220-hello\r\n250 ok\r\n")
        await asyncio.sleep(1)
    with pytest.raises(probe.ProtocolError, match="code changed"):
        probe.connect(scripted(switching).address, tls="none")


def test_plaintext_injected_after_starttls_is_discarded(scripted, certs):
    context = server_context(certs)

    async def script(reader, writer):
        writer.write(b"220 hi\r\n")
        async for line in lines(reader):
            if line.startswith(b"EHLO"):
                writer.write(b"250-test.local\r\n250 STARTTLS\r\n")
            elif line == b"STARTTLS":
                # The 220 and a forged reply in one segment, before the handshake.
                writer.write(b"220 go ahead\r\n250-INJECTED\r\n250 AUTH PLAIN\r\n")
                await writer.drain()
                await writer.start_tls(context)
                break
        async for line in lines(reader):
            if line.startswith(b"EHLO"):
                writer.write(b"250-test.local\r\n250 SIZE 5000\r\n")
            elif line == b"QUIT":
                writer.write(b"221 bye\r\n")
                return
    server = scripted(script)
    result = probe.connect(server.address, tls="starttls", ca_file=str(certs.ca))
    assert result.tls.verified
    assert not result.capabilities.has("INJECTED") and result.capabilities.auth == []
    assert result.capabilities.size == 5000
    assert "Discarded" in str(result.transcript)


def test_round_trips_counted_with_and_without_pipelining(scripted):
    """The server counts how often it had to answer; pipelining makes that 5."""
    flights: list[int] = []

    async def script(reader, writer):
        count = 1
        writer.write(b"220 hi\r\n")
        in_data = False
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            out = b""
            for line in chunk.split(b"\r\n")[:-1]:
                if in_data:
                    if line == b".":
                        in_data = False
                        out += b"250 ok\r\n"
                    continue
                if line.startswith(b"EHLO"):
                    out += EHLO_REPLY
                elif line == b"DATA":
                    in_data = True
                    out += b"354 go\r\n"
                elif line == b"QUIT":
                    out += b"221 bye\r\n"
                else:
                    out += b"250 ok\r\n"
            if out:
                count += 1
                writer.write(out)
                await writer.drain()
        flights.append(count)
    server = scripted(script)
    three = probe.Message("a@example.com", to=["b@example.com", "c@example.com"],
                          cc=["d@example.com"], text="x")
    on = probe.send(three, server.address, tls="none", pipelining="on")
    off = probe.send(three, server.address, tls="none", pipelining="off")
    deadline = time.monotonic() + 2
    while len(flights) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flights == [5, 9]
    assert (on.round_trips, off.round_trips) == (5, 9)
