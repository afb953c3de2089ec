"""Testing a Django app's mail with the ``mailsink`` fixture and Django's SMTP backend."""
from django.core.mail import EmailMultiAlternatives, send_mail


def send_invoice(order_number: int, customer: str) -> None:
    """The code under test: an HTML invoice with a PDF, copied to accounting by BCC."""
    email = EmailMultiAlternatives(
        subject=f"Invoice for order {order_number}",
        body=f"Your invoice for order {order_number} is attached.",
        to=[customer], bcc=["accounting@example.com"])
    email.attach_alternative(f"<h1>Order {order_number}</h1>", "text/html")
    email.attach(f"invoice-{order_number}.pdf", b"%PDF-1.4 invoice", "application/pdf")
    email.send()


def test_send_mail(mailsink):
    send_mail("Your order", "Thanks for your order.", None, ["ada@example.com"])

    [mail] = mailsink.wait_for(to="ada@example.com")
    assert mail.subject == "Your order"
    assert mail.from_ == "Shop <shop@example.com>"
    assert mail.text.strip() == "Thanks for your order."


def test_invoice(mailsink):
    send_invoice(42, "grace@example.com")

    [mail] = mailsink.wait_for(subject="order 42")
    assert mail.to == ["grace@example.com"]
    assert mail.rcpt_tos == ["grace@example.com", "accounting@example.com"]
    assert "accounting@example.com" not in mail.raw.decode()  # BCC stays off the headers
    assert mail.html == "<h1>Order 42</h1>"
    [pdf] = mail.attachments
    assert (pdf.filename, pdf.content_type, pdf.data) == (
        "invoice-42.pdf", "application/pdf", b"%PDF-1.4 invoice")


def test_no_mail_left_over(mailsink):
    assert mailsink.messages == []
