"""sink.mailhog_json on its own: MailHog's parse, and each MailHog bug we fix."""
from __future__ import annotations

from sink.mailhog_json import created_text, message_json, path_json


def build(raw: bytes, mail_from: str = "a@example.com", rcpts=("b@example.org",)) -> dict:
    return message_json("ID1", raw, mail_from, list(rcpts), "client.example", 1_800_000_000.5,
                        "mailsink.local")


def test_repeated_headers_keep_every_value_and_colon_without_space_counts():
    message = build(b"X-A: 1\r\nx-a: lower\r\nX-A: 2\r\nSubject:tight\r\nnot a header\r\n\r\nb\r\n")
    headers = message["Content"]["Headers"]
    assert headers["X-A"] == ["1", "2"] and headers["x-a"] == ["lower"]
    assert headers["Subject"] == ["tight"]
    assert not any(" " in name for name in headers)


def test_bare_lf_messages_and_messages_without_a_body_have_headers():
    lf = build(b"Subject: lf\nTo: b@example.org\n\nbody line\n")
    assert lf["Content"]["Headers"]["Subject"] == ["lf"]
    assert lf["Content"]["Body"] == "body line\n"
    headers_only = build(b"Subject: no body\r\nTo: b@example.org\r\n")
    assert headers_only["Content"]["Headers"]["Subject"] == ["no body"]
    assert headers_only["Content"]["Body"] == ""
    no_headers = build(b"just some text\r\n")
    assert no_headers["Content"]["Body"] == "just some text"


def test_nested_boundary_starting_with_the_outer_one():
    raw = (b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: multipart/alternative; boundary=\"b-inner\"\r\n\r\n"
           b"--b-inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--b-inner--\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\nepilogue\r\n")
    parts = build(raw)["MIME"]["Parts"]
    assert len(parts) == 2
    assert parts[0]["MIME"]["Parts"][0]["Body"] == "inner text"
    assert parts[1]["Body"] == "second"


def test_content_type_in_any_case_and_no_closing_delimiter():
    raw = b"content-type: Multipart/Mixed; boundary=zz\r\n\r\n--zz\r\n\r\n\r\n--zz\r\nA: b\r\n\r\nx"
    parts = build(raw)["MIME"]["Parts"]
    assert [p["Body"] for p in parts] == ["x"]  # the empty part is dropped


def test_no_mime_without_multipart_or_boundary():
    assert build(b"Content-Type: text/plain\r\n\r\nx\r\n")["MIME"] is None
    assert build(b"Content-Type: multipart/mixed\r\n\r\nx\r\n")["MIME"] is None


def test_existing_message_id_is_kept_and_added_headers_use_existing_case():
    headers = build(b"message-id: <m@x>\r\nRECEIVED: earlier\r\nreturn-path: <old>\r\n\r\nx")[
        "Content"]["Headers"]
    assert "Message-ID" not in headers and headers["message-id"] == ["<m@x>"]
    assert headers["RECEIVED"][0] == "earlier" and "(MailHog)" in headers["RECEIVED"][1]
    assert headers["return-path"] == ["<old>", "<a@example.com>"]


def test_paths():
    assert path_json("") == {"Relays": None, "Mailbox": "", "Domain": "", "Params": ""}
    assert path_json("<>")["Mailbox"] == "<>"
    assert path_json("u@[IPv6:2001:db8::1]") == {
        "Relays": None, "Mailbox": "u", "Domain": "[IPv6:2001:db8::1]", "Params": ""}
    assert path_json("@a,@b:u@d")["Relays"] == ["@a", "@b"]
    assert path_json("postmaster")["Domain"] == ""
    null_sender = build(b"Subject: bounce\r\n\r\nx\r\n", mail_from="")
    assert null_sender["From"]["Mailbox"] == "" and null_sender["Raw"]["From"] == ""
    assert null_sender["Content"]["Headers"]["Return-Path"] == ["<>"]


def test_invalid_utf8_is_replaced_and_sizes_count_bytes():
    message = build(b"Subject: caf\xe9\r\n\r\n\xff\xfe\r\n")
    assert message["Content"]["Headers"]["Subject"] == ["caf\ufffd"]
    assert message["Content"]["Size"] == len(b"Subject: caf\xe9\r\n\r\n\xff\xfe")


def test_created_is_go_rfc3339():
    assert created_text(1_800_000_000.5) == "2027-01-15T08:00:00.5Z"
    assert created_text(1_800_000_000) == "2027-01-15T08:00:00Z"
