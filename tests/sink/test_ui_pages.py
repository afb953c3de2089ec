"""The inspector's HTML pages over real HTTP: escaping, the sandboxed HTML frame,
broken MIME, keyset row fragments. (The browser tests are in test_ui_browser.py.)"""
from __future__ import annotations

import re

import httpx

from tests.sink.ui_helpers import listing, send, simple


def only_id(sink) -> str:
    (message,) = listing(sink)["messages"]
    return message["id"]


def test_inbox_lists_and_escapes_hostile_headers(sink):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    send(sink, simple(hostile, sender=f'"{hostile}" <evil@example.com>'))
    page = httpx.get(sink.http_url + "/")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]   # 'self' only
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    view = httpx.get(f"{sink.http_url}/message/{only_id(sink)}")
    assert view.status_code == 200
    assert "<script>alert" not in view.text and "<img src=x" not in view.text


def test_title_counts_unread_and_opening_marks_read(sink):
    send(sink, simple("one"))
    send(sink, simple("two"))
    assert "<title>(2) Inbox" in httpx.get(sink.http_url + "/").text
    first = listing(sink)["messages"][0]["id"]
    httpx.get(f"{sink.http_url}/message/{first}")
    assert listing(sink)["unread"] == 1
    assert "<title>(1) Inbox" in httpx.get(sink.http_url + "/").text


def test_message_view_has_every_tab_and_the_envelope(sink):
    message = simple("Tabs", "the text body")
    message.add_alternative("<p>the html body</p>", subtype="html")
    message.add_attachment(b"data", maintype="application", subtype="zip", filename="a.zip")
    send(sink, message, rcpt=["bob@example.com", "secret@example.com"])
    page = httpx.get(f"{sink.http_url}/message/{only_id(sink)}").text
    for tab in ("html", "text", "headers", "raw", "mime", "envelope"):
        assert f'data-tab="{tab}"' in page and f'data-panel="{tab}"' in page
    assert "the text body" in page
    assert "a.zip" in page and "application/zip" in page
    assert re.search(r"&lt;secret@example.com&gt; <span class=\"badge\">BCC</span>", page)
    assert "&lt;bob@example.com&gt;</td>" in page                         # not marked
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "allow-scripts" not in page and "allow-same-origin" not in page


def test_html_frame_is_sandboxed_and_rewritten(sink):
    message = simple("Frame", "text")
    message.add_alternative(
        '<html><head><meta http-equiv="refresh" content="0;url=https://tracker.example/">'
        '</head><body><a href="https://example.com/x" target="_self">link</a>'
        '<img src="cid:logo@here"><img src="https://tracker.example/pixel.gif">'
        "<script>parent.document.title='owned'</script></body></html>", subtype="html")
    message.get_payload()[1].add_related(b"GIF89a", maintype="image", subtype="gif",
                                         cid="<logo@here>")
    send(sink, message)
    message_id = only_id(sink)
    response = httpx.get(f"{sink.http_url}/message/{message_id}/html")
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox ")
    assert "allow-scripts" not in policy and "allow-same-origin" not in policy
    assert "default-src 'none'" in policy and "form-action 'none'" in policy
    assert f"{sink.http_url}/api/v3/messages/{message_id}/parts/" in policy
    assert "https:" not in policy                                        # remote blocked
    body = response.text
    assert 'target="_blank" rel="noopener noreferrer" href="https://example.com/x"' in body
    assert "http-equiv" not in body
    assert f'src="/api/v3/messages/{message_id}/parts/' in body and "cid:logo" not in body
    remote = httpx.get(f"{sink.http_url}/message/{message_id}/html", params={"remote": 1})
    assert "https:" in remote.headers["content-security-policy"]
    page = httpx.get(f"{sink.http_url}/message/{message_id}").text
    assert "Load remote images" in page


def test_broken_mime_still_opens(sink):
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: broken\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           b"--wrong\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff\xfe junk\r\n")
    send(sink, raw, rcpt=["b@example.com"])
    message_id = only_id(sink)
    page = httpx.get(f"{sink.http_url}/message/{message_id}")
    assert page.status_code == 200
    assert "defects" in page.text                      # says what went wrong
    assert "--wrong" in page.text                      # the raw source is there
    assert httpx.get(f"{sink.http_url}/api/v3/messages/{message_id}").status_code == 200


def test_unknown_message_is_a_404_page(sink):
    response = httpx.get(f"{sink.http_url}/message/nope")
    assert response.status_code == 404 and "Message not found" in response.text
    assert httpx.get(f"{sink.http_url}/message/nope/html").status_code == 404


def test_row_fragments_page_by_key_and_search(sink):
    for n in range(55):
        send(sink, simple(f"msg {n}", "findme" if n % 5 == 0 else "other"))
    first = httpx.get(sink.http_url + "/inbox/rows").text
    ids = re.findall(r'<div class="msg unread" role="listitem" data-id="([^"]+)"', first)
    assert len(ids) == 50
    before = re.search(r'data-before="([^"]+)"', first).group(1)
    assert before == ids[-1]
    rest = httpx.get(sink.http_url + "/inbox/rows", params={"before": before}).text
    assert len(re.findall(r'data-id="', rest)) == 5 and "data-before" not in rest
    found = httpx.get(sink.http_url + "/inbox/rows", params={"q": "findme"}).text
    assert len(re.findall(r'data-id="', found)) == 11
    searched = httpx.get(sink.http_url + "/", params={"q": "findme"}).text
    assert '<span id="matching">11</span> matching' in searched
    bad = httpx.get(sink.http_url + "/", params={"q": "is:sideways"})
    assert bad.status_code == 200 and "Search error" in bad.text


def test_static_assets_are_served(sink):
    for path, kind in [("/static/app.js", "javascript"), ("/static/app.css", "text/css"),
                       ("/static/favicon.svg", "image/svg+xml")]:
        response = httpx.get(sink.http_url + path)
        assert response.status_code == 200 and kind in response.headers["content-type"]


def test_envelope_tab_shows_tls_and_auth_when_used():
    import smtplib

    from sink import Sink

    with Sink(auth="any") as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
            client.starttls(context=sink.client_ssl_context())
            client.login("app-user", "secret")
            client.sendmail("a@example.com", ["b@example.com"], bytes(simple("secure")))
        page = httpx.get(f"{sink.http_url}/message/{only_id(sink)}").text
    envelope = page[page.index('data-panel="envelope"'):]
    assert re.search(r"TLSv1\.[23] · \S+", envelope)
    assert re.search(r"app-user · [A-Z0-9-]+<", envelope)          # smtplib picks CRAM-MD5
    assert "not authenticated" not in envelope and "none (plain text)" not in envelope
