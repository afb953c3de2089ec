"""MailHog's v1/v2 calls: paging, search, deletes, downloads, status codes, CORS, prefix."""
from __future__ import annotations

import base64

import httpx

from sink import Settings, Sink


def plain(subject: str, body: str = "hello", sender: str = "a@example.com",
          to: str = "b@example.org", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n").encode()


def test_v2_paging_is_newest_first_with_mailhog_defaults(sink, api, send):
    for number in range(60):
        send(sink, plain(f"n{number}"), "a@example.com", ["b@example.org"])
    first = api.get("/api/v2/messages").json()
    assert (first["total"], first["count"], first["start"]) == (60, 50, 0)
    assert [m["Content"]["Headers"]["Subject"][0] for m in first["items"][:2]] == ["n59", "n58"]
    rest = api.get("/api/v2/messages", params={"start": 50, "limit": 20}).json()
    assert (rest["count"], rest["start"]) == (10, 50)
    assert rest["items"][-1]["Content"]["Headers"]["Subject"] == ["n0"]
    # MailHog ignores values it cannot use rather than failing.
    odd = api.get("/api/v2/messages", params={"start": "x", "limit": "-3"}).json()
    assert (odd["start"], odd["count"]) == (0, 50)
    capped = api.get("/api/v2/messages", params={"limit": 1000}).json()
    assert capped["count"] == 60  # fewer than the cap of 250
    assert len(api.get("/api/v1/messages").json()) == 60


def test_v2_limit_is_capped_at_250(sink, api, send):
    raw = plain("many")
    import smtplib
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        for _ in range(260):
            client.sendmail("a@example.com", ["b@example.org"], raw)
    page = api.get("/api/v2/messages", params={"limit": 500}).json()
    assert (page["total"], page["count"]) == (260, 250)


def test_search_kinds_paging_and_errors(sink, api, send):
    send(sink, plain("one", sender="Alice <alice@example.com>"), "bounce@example.com",
         ["bob@example.org"])
    send(sink, plain("two", to="Carol <carol@example.org>"), "x@example.com",
         ["carol@example.org", "hidden@example.net"])
    send(sink, plain("three", body="the Needle is here"), "y@example.com", ["z@example.org"])

    def subjects(kind, query, **extra):
        result = api.get("/api/v2/search", params={"kind": kind, "query": query, **extra})
        assert result.status_code == 200
        body = result.json()
        return body["total"], [m["Content"]["Headers"]["Subject"][0] for m in body["items"]]

    assert subjects("from", "ALICE@example") == (1, ["one"])       # From header, any case
    assert subjects("from", "bounce@") == (1, ["one"])             # envelope sender
    assert subjects("to", "hidden@example.net") == (1, ["two"])    # BCC: envelope only
    assert subjects("to", "Carol") == (1, ["two"])
    assert subjects("containing", "needle") == (1, ["three"])
    assert subjects("containing", "subject: two") == (1, ["two"])  # raw header text
    assert subjects("containing", "example") == (3, ["three", "two", "one"])
    assert subjects("containing", "example", start=1, limit=1) == (3, ["two"])
    assert subjects("containing", "nothing like this") == (0, [])
    for params in ({"kind": "subject", "query": "x"}, {"query": "x"},
                   {"kind": "from", "query": ""}, {"kind": "from"}):
        response = api.get("/api/v2/search", params=params)
        assert response.status_code == 400 and "error" in response.json()


def test_search_finds_decoded_subjects_and_bodies(sink, api, send):
    # A known MailHog complaint: encoded text could not be found.
    send(sink, b"From: a@example.com\r\nTo: b@example.org\r\n"
               b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
               b"Die Rechnung f=C3=BCr M=C3=A4rz liegt bei, soft=\r\nbreak.\r\n",
         "a@example.com", ["b@example.org"])
    for query in ("Grüße aus", "GRÜSSE"[:3] + "ße", "rechnung für märz", "softbreak"):
        body = api.get("/api/v2/search", params={"kind": "containing", "query": query}).json()
        assert body["total"] == 1, query


def test_v1_get_and_delete_one_and_all(sink, api, send):
    send(sink, plain("keep"), "a@example.com", ["b@example.org"])
    send(sink, plain("drop"), "a@example.com", ["b@example.org"])
    items = api.get("/api/v2/messages").json()["items"]
    drop = items[0]["ID"]
    deleted = api.delete(f"/api/v1/messages/{drop}")
    assert deleted.status_code == 200 and deleted.content == b""
    assert api.get(f"/api/v1/messages/{drop}").status_code == 404
    assert api.delete(f"/api/v1/messages/{drop}").status_code == 404
    assert api.get("/api/v1/messages/no-such-id").json() == {"error": "message not found"}
    assert [m["ID"] for m in api.get("/api/v1/messages").json()] == [items[1]["ID"]]
    cleared = api.delete("/api/v1/messages")
    assert cleared.status_code == 200 and cleared.content == b""
    assert api.get("/api/v2/messages").json()["total"] == 0


def test_part_download_decodes_base64_and_is_always_an_attachment(sink, api, send_reference):
    send_reference(sink, "nested")
    message = api.get("/api/v2/messages").json()["items"][0]
    message_id = message["ID"]
    pdf = api.get(f"/api/v1/messages/{message_id}/mime/part/2/download")
    assert pdf.status_code == 200
    assert pdf.content == base64.b64decode(message["MIME"]["Parts"][2]["Body"])
    assert pdf.content.startswith(b"%PDF-1.4")
    assert pdf.headers["content-type"] == 'application/pdf; name="report.pdf"'
    # MailHog's form first (what clients parse), then RFC 6266's exact UTF-8 name.
    assert pdf.headers["content-disposition"].startswith('attachment; filename="report.pdf";')
    preamble = api.get(f"/api/v1/messages/{message_id}/mime/part/0/download")
    assert preamble.content == b"This is a multi-part message in MIME format."
    assert preamble.headers["content-disposition"].startswith(
        f'attachment; filename="{message_id}-part-0";')
    # An HTML part is downloaded, never rendered on our origin.
    inner = api.get(f"/api/v1/messages/{message_id}/mime/part/1/download")
    assert inner.headers["content-disposition"].startswith("attachment")
    assert inner.headers["x-content-type-options"] == "nosniff"
    assert api.get(f"/api/v1/messages/{message_id}/mime/part/4/download").status_code == 404
    assert api.get(f"/api/v1/messages/{message_id}/mime/part/x/download").status_code == 400
    assert api.get("/api/v1/messages/nope/mime/part/0/download").status_code == 404
    assert api.get("/api/v1/messages/nope/download").status_code == 404


def test_part_download_names_and_headers(sink, api, send):
    send(sink, b"From: a@example.com\r\nTo: b@example.org\r\nSubject: names\r\n"
               b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
               b"Content-Type: text/plain\r\nContent-Encoding: gzip\r\n"
               b"Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20report.txt\r\n"
               b"\r\nplain text, not gzip\r\n--B--\r\n", "a@example.com", ["b@example.org"])
    message_id = api.get("/api/v2/messages").json()["items"][0]["ID"]
    part = api.get(f"/api/v1/messages/{message_id}/mime/part/0/download")
    assert part.status_code == 200 and part.content == b"plain text, not gzip"
    assert "content-encoding" not in part.headers  # not copied: it would lie about the bytes
    assert part.headers["content-disposition"].endswith("filename*=UTF-8''%E2%82%AC%20report.txt")


def test_part_headers_cannot_set_cookies(sink, api, send):
    send(sink, b"From: a@example.com\r\nTo: b@example.org\r\n"
               b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               b"Content-Type: text/html\r\nSet-Cookie: session=evil\r\n"
               b"Content-Disposition: inline\r\n\r\n<script>alert(1)</script>\r\n--b--\r\n",
         "a@example.com", ["b@example.org"])
    message_id = api.get("/api/v2/messages").json()["items"][0]["ID"]
    part = api.get(f"/api/v1/messages/{message_id}/mime/part/0/download")
    assert "set-cookie" not in part.headers
    assert part.headers["content-disposition"].startswith("attachment")


def test_cors_headers_and_preflight():
    with Sink(Settings(smtp_port=0, http_port=0, cors_origin="http://app.test")) as sink:
        with httpx.Client(base_url=sink.http_url) as api:
            response = api.get("/api/v2/messages")
            assert response.headers["access-control-allow-origin"] == "http://app.test"
            assert response.headers["access-control-allow-methods"] == "OPTIONS,GET,PUT,POST,DELETE"
            assert response.headers["access-control-allow-headers"] == "Content-Type"
            v1 = api.get("/api/v1/messages")
            assert v1.headers["access-control-allow-methods"] == "OPTIONS,GET,POST,DELETE"
            preflight = api.options("/api/v1/messages/some-id")
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "http://app.test"


def test_no_cors_headers_by_default(sink, api):
    assert "access-control-allow-origin" not in api.get("/api/v2/messages").headers
    assert api.options("/api/v2/messages").status_code == 200


def test_web_path_prefix(send):
    with Sink(Settings(smtp_port=0, http_port=0, web_path="/mail")) as sink:
        send(sink, plain("prefixed"), "a@example.com", ["b@example.org"])
        with httpx.Client(base_url=sink.http_url) as api:
            assert api.get("/mail/api/v2/messages").json()["total"] == 1
            assert api.get("/mail/api/v3/messages").json()["total"] == 1
            assert api.get("/mail/api/v1/messages").status_code == 200
            assert api.get("/mail/livez").status_code == 200
            redirect = api.get("/mail")
            assert redirect.status_code in (302, 307) and redirect.headers["location"] == "/mail/"
            # The UI under the prefix, and everything still at / (the UI links there).
            assert "release me" not in api.get("/mail/").text
            assert api.get("/mail/").status_code == 200
            assert api.get("/api/v2/messages").json()["total"] == 1


def test_outgoing_smtp_is_empty_without_a_file(sink, api):
    response = api.get("/api/v2/outgoing-smtp")
    assert response.status_code == 200 and response.json() == {}


def test_one_hostile_message_never_breaks_the_list(sink, api, send):
    depth = 600  # deeper than Python's recursion would allow without a limit
    raw = b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for level in range(1, depth):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level - 1, level)
    raw += b"--b%d\r\nContent-Type: text/plain\r\n\r\nleaf\r\n" % (depth - 1)
    for level in reversed(range(depth)):
        raw += b"--b%d--\r\n" % level
    send(sink, b"Subject: fine\r\n\r\nok\r\n", "a@example.com", ["b@example.org"])
    send(sink, raw, "a@example.com", ["b@example.org"])
    listing = api.get("/api/v2/messages")
    assert listing.status_code == 200 and listing.json()["total"] == 2
    assert api.get("/api/v1/messages").status_code == 200


def test_odd_parameters_are_clean_answers(sink, api):
    assert api.get("/api/v2/messages", params={"start": "9" * 30}).status_code == 200
    # 1e999 is infinity to a JSON parser; it must be refused, not break GET /api/v2/jim.
    assert api.post("/api/v2/jim", content=b'{"LinkSpeedMax": 1e999}',
                    headers={"Content-Type": "application/json"}).status_code == 400
    assert api.get("/api/v3/messages", params={"query": "a\x00b"}).status_code == 200
    assert api.get("/", params={"q": "a\x00b"}).status_code == 200
