"""Hostile and odd messages: ingest never breaks, and what can be decoded is."""
from __future__ import annotations

import smtplib

import httpx
import pytest

from sink import message as mime

ODD_MESSAGES = {
    "unknown charset": b"Subject: =?x-no-such-charset?q?caf=E9?=\r\n"
                       b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\ncaf\xe9\r\n",
    "8-bit junk headers": b"Subject: \xff\xfe\x00junk\r\nFrom: \x80\x81 <a@b.example>\r\n\r\n\xff\r\n",
    "broken multipart": b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=\"nope\r\n\r\n"
                        b"--nope\r\nno end\r\n",
    "no headers at all": b"just a body line\r\n",
    "empty": b"",
    "bad base64": b"Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64@@@\r\n",
    "header without colon": b"This is not a header\r\nSubject: after\r\n\r\nbody\r\n",
}


@pytest.mark.parametrize("name", sorted(ODD_MESSAGES))
def test_odd_messages_are_stored_and_listed(sink, name):
    raw = ODD_MESSAGES[name]
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    listing = httpx.get(f"{sink.http_url}/api/v3/messages").json()
    assert listing["total"] == 1
    message_id = listing["messages"][0]["id"]
    assert httpx.get(f"{sink.http_url}/api/v3/messages/{message_id}").status_code == 200
    # smtplib adds a final CRLF when the data does not end with one
    stored = httpx.get(f"{sink.http_url}/api/v3/messages/{message_id}/raw").content
    assert stored in (raw, raw + b"\r\n")


def test_summary_decodes_encoded_words_and_addresses():
    raw = (b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jm@example.com>\r\n"
           b"To: \"Doe, Jane\" <jane@example.com>, bob@example.com\r\n"
           b"Cc: =?iso-8859-1?q?Ren=E9?= <rene@example.com>\r\n"
           b"Subject: =?utf-8?b?8J+Ukw==?= folded\r\n  subject\r\n"
           b"Message-ID: <id@example.com>\r\n\r\nbody\r\n")
    summary = mime.summarize(raw)
    assert summary.from_ == "Jörg Müller <jm@example.com>"
    assert summary.to == ['"Doe, Jane" <jane@example.com>', "bob@example.com"]
    assert summary.cc == ["René <rene@example.com>"]
    assert summary.subject == "🔓 folded subject"
    assert summary.message_id == "<id@example.com>"


def test_parse_finds_text_html_and_attachments():
    raw = (b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: multipart/alternative; boundary=C\r\n\r\n--C\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"caf=C3=A9\r\n--C\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--C--\r\n--B\r\n"
           b"Content-Type: application/pdf\r\nContent-Disposition: attachment; "
           b"filename=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"JVBERi0=\r\n--B--\r\n")
    parsed = mime.parse(raw)
    assert parsed.text.strip() == "café"
    assert parsed.html.strip() == "<p>hi</p>"
    assert [a.filename for a in parsed.attachments] == ["résumé.pdf"]
    pdf = mime.find_part(parsed.tree, parsed.attachments[0].index)
    assert mime.part_bytes(pdf) == b"%PDF-"


def test_raw_utf8_headers_and_filenames_are_decoded():
    raw = ("Subject: Grüße €\r\nFrom: Jürgen <j@example.com>\r\n"
           "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nhällo\r\n--zz\r\n"
           "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"€.txt\"\r\n"
           "\r\nx\r\n--zz--\r\n").encode()
    parsed = mime.parse(raw)
    assert ("Subject", "Grüße €") in parsed.headers
    assert ("From", "Jürgen <j@example.com>") in parsed.headers
    assert [a.filename for a in parsed.attachments] == ["€.txt"]
    latin1 = mime.parse("Subject: caf\xe9\r\n\r\nx\r\n".encode("latin-1"))
    assert ("Subject", "café") in latin1.headers
