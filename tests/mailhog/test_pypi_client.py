"""The PyPI ``mailhog`` client, installed unchanged, against a running mailsink: every call."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

import mailhog  # noqa: E402  (the PyPI client; the test extra installs it)


@pytest.fixture
def client(sink):
    url = urlsplit(sink.http_url)
    return mailhog.Mailhog(host=url.hostname, port=url.port)


def test_every_call_of_the_pypi_client(sink, client, send_reference, send):
    send_reference(sink, "plain")
    send_reference(sink, "nested")
    send_reference(sink, "bcc")

    page = client.messages()
    assert (page.total, page.count, page.start) == (3, 3, 0)
    newest = page.items[0]
    assert newest.get_sender() == "alice@example.com"
    assert newest.get_recipients() == ["bob@example.org", "carol@example.org", "dave@example.net"]
    assert newest.get_subject() == "Who can see this"
    assert client.messages(start=1, limit=1).items[0].get_subject() == "Monthly report"
    nested = client.messages(start=1, limit=1).items[0]
    assert nested.mime is not None and len(nested.mime.parts) == 4

    found = client.search("dave@example.net", kind="to")
    assert found.total == 1 and found.items[0].id == newest.id
    assert client.search("reports@", kind="from").items[0].get_subject() == "Monthly report"
    assert client.search("plain message").items[0].get_subject() == "Plain hello"  # containing

    client.delete(newest)
    assert client.messages().total == 2
    client.delete_all()
    assert client.messages().total == 0
