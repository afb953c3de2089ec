"""Testing code that sends mail with smtplib, using the ``mailsink`` pytest fixture.

With mailsink installed there is nothing to set up: the fixture is a running,
empty sink on free loopback ports. Run with ``pytest``.
"""
import smtplib
from email.message import EmailMessage

import pytest


def send_welcome(smtp_host: str, smtp_port: int, name: str, address: str) -> None:
    """The code under test: the application's welcome mail."""
    message = EmailMessage()
    message["From"] = "Shop <noreply@shop.example>"
    message["To"] = f"{name} <{address}>"
    message["Subject"] = f"Welcome, {name}"
    message.set_content(f"Hello {name},\nthanks for signing up.\n")
    message.add_alternative(f"<p>Hello {name},</p><p>thanks for signing up.</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4 terms", maintype="application", subtype="pdf",
                           filename="terms.pdf")
    with smtplib.SMTP(smtp_host, smtp_port) as client:
        client.send_message(message, to_addrs=[address, "audit@shop.example"])


def test_welcome_mail(mailsink):
    send_welcome(mailsink.smtp_host, mailsink.smtp_port, "Ada", "ada@example.com")

    [mail] = mailsink.wait_for(to="ada@example.com", subject="Welcome")
    assert mail.subject == "Welcome, Ada"
    assert mail.from_ == "Shop <noreply@shop.example>"
    assert mail.rcpt_tos == ["ada@example.com", "audit@shop.example"]  # the envelope: BCC too
    assert "thanks for signing up" in mail.text
    assert "<p>Hello Ada,</p>" in mail.html
    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("terms.pdf", "application/pdf", b"%PDF-1.4 terms")]


def test_every_test_starts_with_an_empty_sink(mailsink):
    assert mailsink.messages == []


def test_waiting_for_several(mailsink):
    for name in ("Ada", "Grace", "Linus"):
        send_welcome(mailsink.smtp_host, mailsink.smtp_port, name, f"{name.lower()}@example.com")
    mails = mailsink.wait_for(count=3, to="audit@shop.example")
    assert sorted(m.subject for m in mails) == ["Welcome, Ada", "Welcome, Grace", "Welcome, Linus"]


@pytest.mark.mailsink(max_size=2000)
def test_a_sink_with_a_size_limit(mailsink):
    with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: big\r\n\r\n" + b"x" * 5000)
    assert refused.value.smtp_code == 552
    assert mailsink.messages == []


@pytest.mark.mailsink(auth="any", require_tls=True)
def test_login_over_starttls(mailsink):
    """A sink that, like a real provider, wants STARTTLS and a login before MAIL."""
    with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
        client.starttls(context=mailsink.client_ssl_context())  # trusts this sink's CA
        client.login("shop", "any password")
        client.sendmail("noreply@shop.example", ["ada@example.com"], b"Subject: secure\r\n\r\nhi\r\n")

    [mail] = mailsink.wait_for(to="ada@example.com")
    assert mail.envelope.auth_user == "shop"
    assert mail.envelope.tls_version in ("TLSv1.2", "TLSv1.3")
