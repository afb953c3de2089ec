"""The Release action of the message page, in a real browser (Debian's chromium)."""
from __future__ import annotations

import json

import httpx

from sink import Settings, Sink
from tests.sink.test_ui_browser import browser, context  # noqa: F401  (the UI tests' fixtures)


def _caught(sink) -> str:
    import smtplib
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail("app@example.com", ["user@example.org"],
                        b"From: app@example.com\r\nTo: user@example.org\r\n"
                        b"Subject: release me\r\n\r\nhello\r\n")
    return httpx.get(f"{sink.http_url}/api/v3/messages").json()["messages"][0]["id"]


def test_release_from_the_message_page(context, tmp_path):  # noqa: F811
    with Sink() as target:
        servers = tmp_path / "servers.json"
        servers.write_text(json.dumps({"second sink": {
            "host": target.smtp_host, "port": target.smtp_port, "email": "saved@example.net"}}))
        with Sink(Settings(smtp_port=0, http_port=0, outgoing_smtp=str(servers))) as sink:
            message_id = _caught(sink)
            page = context.new_page()
            page.goto(f"{sink.http_url}/message/{message_id}")
            page.click("#release-toggle")
            form = page.locator("#release-form")
            form.locator("[name=to]").fill("someone@example.net")
            form.locator("[name=host]").fill(target.smtp_host)
            form.locator("[name=port]").fill(str(target.smtp_port))
            page.click("#release-send")
            status = page.locator("#release-status")
            status.filter(has_text="Released to someone@example.net").wait_for()
            assert "250" in status.inner_text()
            assert "MAIL FROM" in page.locator("#release-transcript").inner_text()

            # A saved server from --outgoing-smtp is offered by name.
            page.select_option("#release-server", "second sink")
            form.locator("[name=to]").fill("again@example.net")
            page.click("#release-send")
            status.filter(has_text="again@example.net").wait_for()

            # A refusal shows the server's reply and the stage.
            page.select_option("#release-server", "")
            form.locator("[name=port]").fill("1")
            page.click("#release-send")
            status.filter(has_text="Not released").wait_for()
            assert "connect" in status.inner_text()
        released = httpx.get(f"{target.http_url}/api/v2/messages").json()["items"]
        assert [m["Raw"]["To"] for m in released] == [["again@example.net"], ["someone@example.net"]]
