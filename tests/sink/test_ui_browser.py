"""The inspector in a real browser: Debian's chromium driven by Playwright.

Never ``playwright install``: the browser is /usr/bin/chromium from .ci/install.sh.
Hostile HTML is proven harmless by side effects that must not happen: requests to
a small HTTP server of the test's own that the message's script, onerror handler,
external script and form would hit. Its remote image is the positive control:
it must hit the server once the user asks for remote images.
"""
from __future__ import annotations

import http.server
import re
import struct
import threading
import time
import zlib
from email.message import EmailMessage

import pytest

from tests.conftest import require_tool
from tests.sink.ui_helpers import listing, send, simple

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    executable = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser):
    # accept_downloads for the attachment test; a new context per test isolates tabs.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(10_000)
    yield context
    context.close()


class Recorder:
    """A loopback HTTP server that remembers every path it was asked for."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                hits.append(self.path)
                body = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    running = Recorder()
    yield running
    running.close()


def png(width: int = 4, height: int = 4) -> bytes:
    """A tiny valid red PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_new_mail_appears_live_and_title_counts(sink, context, tmp_path):
    send(sink, simple("Already here"))
    page = context.new_page()
    page.goto(sink.http_url + "/")
    page.wait_for_selector(".msg")
    page.evaluate("window.__noReload = true")
    page.wait_for_selector("#live:not(.off)")
    time.sleep(0.3)   # let the event stream settle before mail arrives
    send(sink, simple("Fresh off the wire", sender="Live Sender <live@example.com>"))
    page.wait_for_selector(".msg .subject:text('Fresh off the wire')", timeout=3000)
    assert page.evaluate("window.__noReload") is True
    assert page.locator(".msg").count() == 2
    assert page.locator(".msg").first.locator(".subject").inner_text() == "Fresh off the wire"
    page.wait_for_function("document.title.startsWith('(2) ')")
    page.screenshot(path=str(tmp_path / "inbox.png"))


def test_search_narrows_the_list(sink, context):
    for subject in ["alpha report", "beta report", "gamma notes"]:
        send(sink, simple(subject))
    page = context.new_page()
    page.goto(sink.http_url + "/")
    assert page.locator(".msg").count() == 3
    page.fill("#search", "report -subject:beta")
    page.press("#search", "Enter")
    page.wait_for_url(re.compile(r"\?q="))
    assert page.locator(".msg .subject").all_inner_texts() == ["alpha report"]
    assert "1</span> matching" in page.content()


def test_hostile_html_runs_nothing_and_remote_images_wait(sink, context, recorder, tmp_path):
    r = recorder.url
    hostile = EmailMessage()
    hostile["From"] = "attacker@example.com"
    hostile["To"] = "victim@example.com"
    hostile["Subject"] = "Hostile HTML"
    hostile.set_content("text version")
    hostile.add_alternative(f"""<html><head>
<script src="{r}/external-script.js"></script>
<script>fetch("{r}/inline-script"); parent.document.title = "owned";</script>
</head><body>
<h1 id="headline">Hello</h1>
<img src="does-not-exist.png" onerror="fetch('{r}/onerror')">
<svg onload="fetch('{r}/svg-onload')"></svg>
<form action="{r}/form-submit" method="post"><input name="q" value="1">
  <button id="submit" type="submit">Submit</button></form>
<a id="link" href="{r}/clicked-link">a link</a>
<img id="remote" src="{r}/remote-image.gif">
</body></html>""", subtype="html")
    send(sink, hostile)
    message_id = listing(sink)["messages"][0]["id"]
    page = context.new_page()
    page.goto(f"{sink.http_url}/message/{message_id}")
    frame = page.frame_locator("#html-frame")
    assert frame.locator("#headline").inner_text() == "Hello"        # it did render
    frame.locator("#submit").click()
    time.sleep(1.0)
    assert recorder.hits == []
    assert page.title().startswith("Hostile HTML")
    assert frame.locator("#link").get_attribute("target") == "_blank"
    page.screenshot(path=str(tmp_path / "message-hostile.png"))
    page.click("#load-remote")
    assert wait_until(lambda: "/remote-image.gif" in recorder.hits), recorder.hits
    time.sleep(0.5)
    assert recorder.hits == ["/remote-image.gif"]                   # still nothing else


def test_cid_image_shows(sink, context, tmp_path):
    message = simple("Inline image", "see the logo")
    message.add_alternative('<p>Logo: <img id="logo" src="cid:logo.123@example.com" '
                            'width="40" height="40"></p>', subtype="html")
    message.get_payload()[1].add_related(png(), maintype="image", subtype="png",
                                         cid="<logo.123@example.com>")
    send(sink, message)
    page = context.new_page()
    loaded = []
    page.on("response", lambda r: loaded.append((r.url, r.status))
            if "/parts/" in r.url else None)
    page.goto(f"{sink.http_url}/message/{listing(sink)['messages'][0]['id']}")
    logo = page.frame_locator("#html-frame").locator("#logo")
    logo.wait_for()
    assert wait_until(lambda: any(status == 200 for _, status in loaded)), loaded
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 4
    page.screenshot(path=str(tmp_path / "message-cid.png"))


def test_attachment_downloads_byte_exact(sink, context):
    payload = bytes(range(256)) * 64 + b"\r\n\x00end"
    message = simple("With attachment", "see attached")
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="data é.bin")
    send(sink, message)
    page = context.new_page()
    page.goto(f"{sink.http_url}/message/{listing(sink)['messages'][0]['id']}")
    with page.expect_download() as download_info:
        page.click("a.attachment")
    download = download_info.value
    assert download.suggested_filename == "data é.bin"
    with open(download.path(), "rb") as handle:
        assert handle.read() == payload


def test_delete_all_in_one_tab_empties_another(sink, context):
    for n in range(3):
        send(sink, simple(f"doomed {n}"))
    first, second = context.new_page(), context.new_page()
    for page in (first, second):
        page.goto(sink.http_url + "/")
        page.wait_for_selector("#live:not(.off)")
        assert page.locator(".msg").count() == 3
    first.on("dialog", lambda dialog: dialog.accept())
    first.click("[data-action='delete-all']")
    second.wait_for_selector("#empty:not([hidden])", timeout=3000)
    assert second.locator(".msg").count() == 0
    assert listing(sink)["total"] == 0
    second.wait_for_function("document.title === 'Inbox · mailsink'")


def test_reading_in_one_tab_updates_another(sink, context, tmp_path):
    send(sink, simple("Read me", "body"))
    inbox, reader = context.new_page(), context.new_page()
    inbox.goto(sink.http_url + "/")
    inbox.wait_for_selector("#live:not(.off)")
    assert inbox.locator(".msg.unread").count() == 1
    reader.goto(sink.http_url + "/")
    reader.click(".msg-link")
    reader.wait_for_selector("#message")
    reader.click("[data-tab='envelope']")
    reader.screenshot(path=str(tmp_path / "message-envelope.png"))
    inbox.wait_for_selector(".msg:not(.unread)", timeout=3000)
    reader.click("#mark-unread")
    inbox.wait_for_selector(".msg.unread", timeout=3000)


def test_endless_scroll_loads_every_page(sink, context):
    import smtplib

    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:   # one session: fast
        for n in range(120):
            client.sendmail("bulk@example.com", ["to@example.com"],
                            bytes(simple(f"bulk {n:03}", to="to@example.com")))
    page = context.new_page()
    page.goto(sink.http_url + "/")
    assert page.locator(".msg").count() == 50
    for _ in range(10):
        page.mouse.wheel(0, 20_000)
        if page.locator(".msg").count() == 120:
            break
        page.wait_for_timeout(200)
    assert page.locator(".msg").count() == 120
    subjects = page.locator(".msg .subject").all_inner_texts()
    assert subjects == [f"bulk {n:03}" for n in reversed(range(120))]
    assert page.locator(".more-rows").count() == 0
