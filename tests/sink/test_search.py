"""The search syntax, end to end: real mail over SMTP, searched through /api/v3."""
from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from sink.search import SearchError, compile_query
from tests.sink.ui_helpers import listing, send, simple, subjects


@pytest.fixture
def mailbox(sink):
    """A sink holding a handful of distinguishable messages."""
    send(sink, simple("Invoice 2024-17 for March", "Please pay the amount due.",
                      sender="Billing <billing@shop.example>", to="carol@example.com"))
    send(sink, simple("Password reset", "Click the link to reset your password.",
                      sender="security@bank.example", to="dave@example.com"),
         rcpt=["dave@example.com", "hidden-auditor@example.org"])
    attached = simple("Quarterly report", "The report is attached.", to="erin@example.com")
    attached.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                            filename="report.pdf")
    send(sink, attached)
    send(sink, simple("Grüße aus München", "Schöne Grüße, José",
                      sender="José <jose@example.es>", to="Zoë <zoe@example.de>"))
    send(sink, simple("Newsletter: shipping news", "order shipped today to you"))
    return sink


def test_free_text_matches_subject_body_and_addresses(mailbox):
    assert subjects(mailbox, "invoice") == ["Invoice 2024-17 for March"]
    assert subjects(mailbox, "amount") == ["Invoice 2024-17 for March"]      # body
    assert subjects(mailbox, "billing") == ["Invoice 2024-17 for March"]     # address
    assert subjects(mailbox, "passw") == ["Password reset"]                  # prefix


def test_quoted_phrase_is_exact(mailbox):
    assert subjects(mailbox, '"order shipped"') == ["Newsletter: shipping news"]
    assert subjects(mailbox, '"shipped order"') == []


def test_field_terms(mailbox):
    assert subjects(mailbox, "from:security@bank") == ["Password reset"]
    assert subjects(mailbox, "subject:report") == ["Quarterly report"]
    assert subjects(mailbox, "subject:attached") == []          # only in the body
    assert subjects(mailbox, "to:carol") == ["Invoice 2024-17 for March"]


def test_to_finds_bcc_recipients_from_the_envelope(mailbox):
    assert subjects(mailbox, "to:hidden-auditor") == ["Password reset"]


def test_has_attachment_and_read_state(mailbox):
    assert subjects(mailbox, "has:attachment") == ["Quarterly report"]
    first = listing(mailbox, query="invoice")["messages"][0]["id"]
    httpx.patch(f"{mailbox.http_url}/api/v3/messages/{first}", json={"read": True})
    assert subjects(mailbox, "is:read") == ["Invoice 2024-17 for March"]
    assert "Invoice 2024-17 for March" not in subjects(mailbox, "is:unread")
    assert len(subjects(mailbox, "is:unread")) == 4


def test_negation(mailbox):
    everything = subjects(mailbox, "")
    assert len(everything) == 5
    assert "Password reset" not in subjects(mailbox, "-password")
    assert len(subjects(mailbox, "-password")) == 4
    assert subjects(mailbox, "-has:attachment -subject:newsletter -from:josé") == \
        ["Password reset", "Invoice 2024-17 for March"]


def test_non_ascii_everywhere(mailbox):
    assert subjects(mailbox, "münchen") == ["Grüße aus München"]
    assert subjects(mailbox, "munchen") == ["Grüße aus München"]   # diacritics folded
    assert subjects(mailbox, "to:zoë") == ["Grüße aus München"]
    assert subjects(mailbox, "from:José") == ["Grüße aus München"]


def test_dates(mailbox):
    today = dt.datetime.now(dt.timezone.utc).date()
    assert len(subjects(mailbox, f"after:{today - dt.timedelta(days=1)}")) == 5
    assert subjects(mailbox, f"after:{today}") == []           # after the whole day
    assert subjects(mailbox, f"before:{today}") == []
    assert len(subjects(mailbox, f"before:{today + dt.timedelta(days=1)}")) == 5
    an_hour_ago = dt.datetime.fromtimestamp(time.time() - 3600, dt.timezone.utc)
    assert len(subjects(mailbox, f"after:{an_hour_ago.isoformat(timespec='minutes')}")) == 5


def test_terms_combine_with_and(mailbox):
    assert subjects(mailbox, "report has:attachment") == ["Quarterly report"]
    assert subjects(mailbox, "report -has:attachment") == []


def test_punctuation_only_and_odd_input_never_fail(mailbox):
    for query in ["-", '"', '""', "*", "NEAR(", "a:", "-:", "(((", "AND OR NOT", "\\", "%_%"]:
        response = httpx.get(f"{mailbox.http_url}/api/v3/messages", params={"query": query})
        assert response.status_code == 200, (query, response.text)


def test_bad_terms_are_400_with_a_reason(mailbox):
    for query, word in [("before:yesterday", "before"), ("has:unicorn", "has"),
                        ("is:starred", "is")]:
        response = httpx.get(f"{mailbox.http_url}/api/v3/messages", params={"query": query})
        assert response.status_code == 400
        assert word in response.json()["error"]


def test_compile_query_shapes():
    assert compile_query("") == ("1", [])
    assert compile_query("   ") == ("1", [])
    where, params = compile_query('-subject:"a b" is:unread')
    assert "NOT (m.seq IN" in where and "m.is_read = 0" in where
    assert params == ['subject : ("a b")']
    # Word-index terms become one MATCH, the negated ones inside it.
    where, params = compile_query("alpha -beta subject:gamma")
    assert where.count("MATCH") == 1
    assert params == ['("alpha"*) AND (subject : ("gamma"*)) NOT ("beta"*)']
    with pytest.raises(SearchError):
        compile_query("after:2026-13-45")


def test_address_wildcard_characters_are_literal(sink):
    send(sink, simple("underscore", sender="first_last@example.com"))
    send(sink, simple("look-alike", sender="firstXlast@example.com"))
    send(sink, simple("percent", sender="100%real@example.com"))
    assert subjects(sink, "from:first_last") == ["underscore"]
    assert subjects(sink, "from:100%r") == ["percent"]
    assert subjects(sink, "from:FIRSTxLAST") == ["look-alike"]          # ASCII case ignored


def test_address_index_is_rebuilt_for_an_older_database(tmp_path):
    import sqlite3

    from sink import Sink

    db = str(tmp_path / "old.db")
    with Sink(db=db) as first:
        send(first, simple("kept", sender="keeper@example.com"), rcpt=["bcc-me@example.org"])
        assert subjects(first, "from:keeper") == ["kept"]
    with sqlite3.connect(db) as connection:       # as a database from before the index
        connection.execute("DROP TABLE message_addresses")
    with Sink(db=db) as second:
        assert subjects(second, "from:keeper") == ["kept"]
        assert subjects(second, "to:bcc-me") == ["kept"]


def test_search_count_can_stop_early(sink):
    for n in range(5):
        send(sink, simple(f"counted {n}"))
    store = sink.server.store
    page = sink.call(store.list(0, 2, "counted", count_limit=3))
    assert (page.total, page.total_exact, len(page.summaries)) == (3, False, 2)
    page = sink.call(store.list(0, 2, "counted", count_limit=10))
    assert (page.total, page.total_exact) == (5, True)
    assert sink.call(store.list(0, 2, "", count_limit=3)).total == 5   # a counter: exact
