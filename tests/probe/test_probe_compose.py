"""The pure parts: DATA encoding, header handling and argument parsing."""
from __future__ import annotations

import pytest

import probe
from probe.compose import (envelope_address, header_recipients, message_size, parse_header,
                           strip_bcc, to_wire)
from probe.results import Reply


def test_to_wire_normalises_line_endings_and_stuffs_dots():
    assert to_wire(b".a\n..b\r\nc\r.d") == b"..a\r\n...b\r\nc\r\n..d\r\n"
    assert to_wire(b"no newline") == b"no newline\r\n"
    assert message_size(b"a\nb") == len(b"a\r\nb\r\n")


def test_strip_bcc_and_header_recipients():
    raw = (b"To: A <a@x.test>, b@x.test\nBcc: hidden@x.test,\n  other@x.test\n"
           b"Cc: c@x.test\nSubject: s\n\nBcc: in the body stays\n")
    assert header_recipients(raw) == ["a@x.test", "b@x.test", "c@x.test", "hidden@x.test",
                                      "other@x.test"]
    stripped = strip_bcc(raw)
    assert b"hidden" not in stripped and b"other@" not in stripped
    assert stripped.endswith(b"\n\nBcc: in the body stays\n")


def test_addresses_and_headers_are_checked():
    assert envelope_address("Jörg <j@x.test>", "to") == "j@x.test"
    assert envelope_address("<>", "from") == ""
    for bad in ("a b@x.test", "a@x.test\r\nRCPT TO:<e@x.test>"):
        with pytest.raises(probe.UsageError):
            envelope_address(bad, "to")
    assert parse_header("X-A:  b c ") == ("X-A", "b c")
    for bad in ("no colon", "Bad Name: x", "X-A: a\r\nBcc: evil@x.test"):
        with pytest.raises(probe.UsageError):
            parse_header(bad)


def test_split_server():
    assert probe.split_server("mx.test") == ("mx.test", None)
    assert probe.split_server("mx.test:2525") == ("mx.test", 2525)
    assert probe.split_server("[::1]:25") == ("::1", 25)
    assert probe.split_server("::1", 25) == ("::1", 25)
    with pytest.raises(probe.UsageError, match="Port must be between"):
        probe.split_server("mx.test:0")


def test_reply_parts():
    reply = Reply(550, ["5.1.1 <a@x.test>: user unknown", "see the docs"])
    assert reply.enhanced_code == "5.1.1" and reply.text == "<a@x.test>: user unknown see the docs"
    assert str(reply) == "550 5.1.1 <a@x.test>: user unknown see the docs"
    assert reply.raw == "550-5.1.1 <a@x.test>: user unknown\r\n550 see the docs"
    assert Reply(354, ["1.2.3 go"]).enhanced_code is None
