"""Small helpers shared by the inspector tests: send mail over real SMTP, build MIME."""
from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx


def send(sink, message: EmailMessage | bytes, rcpt: list[str] | None = None,
         sender: str = "sender@example.com") -> None:
    """Deliver one message to ``sink`` over SMTP (envelope recipients default to To)."""
    raw = message if isinstance(message, bytes) else bytes(message)
    if rcpt is None:
        rcpt = [message["To"]] if isinstance(message, EmailMessage) else ["to@example.com"]
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
        client.sendmail(sender, rcpt, raw)


def simple(subject: str, body: str = "hello", sender: str = "Alice <alice@example.com>",
           to: str = "bob@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def listing(sink, **params) -> dict:
    response = httpx.get(f"{sink.http_url}/api/v3/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def subjects(sink, query: str) -> list[str]:
    return [m["subject"] for m in listing(sink, query=query, limit=1000)["messages"]]
