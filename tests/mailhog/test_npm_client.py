"""The npm ``mailhog`` client, installed unchanged (tests/mailhog/node), run with Node: every call."""
from __future__ import annotations

import json
import pathlib
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.conftest import require_tool

NODE_DIR = pathlib.Path(__file__).parent / "node"


@pytest.fixture
def npm_client(sink):
    node = require_tool("node")
    if not (NODE_DIR / "node_modules" / "mailhog").is_dir():
        pytest.fail("the npm mailhog client is not installed: run .ci/install.sh "
                    "(npm ci in tests/mailhog/node)")
    port = str(urlsplit(sink.http_url).port)

    def call(name: str, *args):
        result = subprocess.run([node, "call.js", port, name, json.dumps(list(args))],
                                cwd=NODE_DIR, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)
    return call


def test_every_call_of_the_npm_client(sink, npm_client, send_reference, send):
    send_reference(sink, "alternative")
    send_reference(sink, "nested")
    send_reference(sink, "nonascii")
    send_reference(sink, "bcc")
    send(sink, b"From: Sam <sam@example.com>\r\nTo: pat@example.org\r\n"
               b"Reply-To: replies@example.com\r\nDate: Mon, 23 Nov 2026 06:00:00 +0000\r\n"
               b"Subject: dated\r\nContent-Type: text/plain\r\n\r\nplain text\r\n", "sam@example.com", ["pat@example.org"])

    page = npm_client("messages")
    assert (page["total"], page["count"], page["start"]) == (5, 5, 0)
    dated, bcc, nonascii, nested, alternative = page["items"]
    assert dated["replyTo"] == "replies@example.com"
    assert dated["date"] == "2026-11-23T06:00:00.000Z"
    assert dated["deliveryDate"].startswith("20")  # from Created
    assert dated["text"] == "plain text"
    assert bcc["cc"] == "carol@example.org" and "bcc" not in bcc
    # Encoded words and 8-bit bodies, decoded by the client from our JSON.
    # (The client's own Q decoding leaves "_" for spaces, against MailHog too.)
    assert nonascii["subject"] == "Grüße_aus_Köln"
    assert nonascii["from"] == "Zoë <zoe@example.com>"
    assert nonascii["to"] == "Jürgen <juergen@example.org>"
    assert nonascii["text"] == "Grüße aus Köln ☕\r\n— Zoë"
    assert alternative["text"] == "Café at ten, soft line break."
    assert alternative["html"] == "<p>Caf&eacute; at <b>ten</b></p>"
    assert [(a["name"], a["type"], a.get("encoding")) for a in nested["attachments"]] == [
        ("report.pdf", 'application/pdf; name="report.pdf"', "base64"),
        ("data.csv", 'text/csv; name="data.csv"', None)]

    assert [m["subject"] for m in npm_client("messages", 1, 2)["items"]] == \
        ["Who can see this", "Grüße_aus_Köln"]
    search = npm_client("search", "example.org", "to", 1, 2)
    assert (search["total"], search["count"], search["start"]) == (5, 2, 1)
    assert npm_client("latestFrom", "zoe@example.com")["ID"] == nonascii["ID"]
    assert npm_client("latestTo", "dave@example.net")["subject"] == "Who can see this"
    assert npm_client("latestContaining", "soft line")["ID"] == alternative["ID"]
    assert npm_client("latestContaining", "no such text") == 0

    assert npm_client("encode", "Grüße", "base64") == "R3LDvMOfZQ=="
    assert npm_client("decode", "R3LDvMOfZQ==", "base64") == "Grüße"
    assert npm_client("encode", "Grüße", "quoted-printable") == "Gr=C3=BC=C3=9Fe"

    assert npm_client("deleteMessage", bcc["ID"]) == {"statusCode": 200}
    assert npm_client("messages")["total"] == 4
    assert npm_client("deleteAll") == {"statusCode": 200}
    assert npm_client("messages")["total"] == 0
