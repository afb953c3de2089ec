"""The UI under a web path prefix (MH_UI_WEB_PATH), as behind a reverse proxy that
forwards only that prefix: every request the page makes must stay under it."""
from __future__ import annotations

import smtplib
from urllib.parse import urlsplit

from sink import Settings, Sink
from tests.sink.test_ui_browser import browser, context  # noqa: F401  (the UI tests' fixtures)

PREFIX = "/mail"


def send(sink, subject: str, html: str = "<p>hi</p>") -> None:
    raw = (f"From: app@example.com\r\nTo: user@example.org\r\nSubject: {subject}\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=B\r\n\r\n"
           f"--B\r\nContent-Type: text/html\r\n\r\n{html}<img src=\"cid:logo\">\r\n"
           "--B\r\nContent-Type: image/gif\r\nContent-ID: <logo>\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n"
           "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==\r\n--B--\r\n")
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("app@example.com", ["user@example.org"], raw.encode())


def test_ui_works_when_only_the_prefix_is_forwarded(context):  # noqa: F811
    with Sink(Settings(smtp_port=0, http_port=0, web_path=PREFIX)) as sink:
        send(sink, "first under the prefix")
        outside: list[str] = []

        def only_the_prefix(route):
            # What a reverse proxy forwarding only PREFIX would do with anything else.
            if urlsplit(route.request.url).path.startswith(PREFIX + "/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()
        context.route("**/*", only_the_prefix)
        sockets: list[str] = []
        page = context.new_page()
        page.on("websocket", lambda socket: sockets.append(socket.url))
        page.goto(f"{sink.http_url}{PREFIX}/")
        page.wait_for_selector("text=first under the prefix")
        send(sink, "second, arrives live")
        page.wait_for_selector("text=second, arrives live")  # the WebSocket works
        page.click("text=first under the prefix")
        frame = page.frame_locator("iframe").first
        frame.locator("img").wait_for()
        loaded = frame.locator("img").evaluate("image => image.naturalWidth")
        assert loaded == 1  # the cid: image, through its prefixed part URL
        assert outside == []
        assert sockets and all(urlsplit(url).path.startswith(PREFIX + "/") for url in sockets)
