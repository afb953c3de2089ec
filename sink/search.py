"""The search syntax shared by the UI and ``/api/v3``, compiled to SQL.

``free text``, ``"quoted phrase"``, ``from:``, ``to:`` (header To/Cc and envelope
recipients, so BCC is findable), ``subject:``, ``has:attachment``, ``is:read``,
``is:unread``, ``before:YYYY-MM-DD``, ``after:YYYY-MM-DD``, and ``-`` before any term
to negate it. Free text and subject use the FTS5 word index, ``from:`` and ``to:``
the trigram index of addresses (substrings); the result is a WHERE clause over
the ``messages`` table aliased ``m``.

Dates are UTC calendar days of the time the message was received: ``before:D``
is everything received before day D began, ``after:D`` everything received after
day D ended (as Gmail does). A full ISO time (``after:2026-11-23T10:30``) is an
exact bound. Terms are ANDed.
"""
from __future__ import annotations

import datetime as dt
import json
import re

_TERM = re.compile(r'(-?)(?:(\w+):)?("(?:[^"]*)"?|\S+)')
_WORD = re.compile(r"\w")


class SearchError(ValueError):
    """The query cannot be understood; the message says which term and why."""


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FTS_SQL = "m.seq IN (SELECT rowid FROM message_text WHERE message_text MATCH ?)"


class _Match(str):
    """An FTS5 match expression for one term; ``compile_query`` combines them all
    into one MATCH, so the word index is read once, not once per term."""


def _fts_condition(column: str | None, text: str, prefix: bool) -> _Match | None:
    # Words without a letter or digit are no tokens to FTS5: such a term says nothing.
    words = [w for w in text.split() if _WORD.search(w)]
    if not words:
        return None
    match = " ".join(_fts_phrase(w) + ("*" if prefix else "") for w in words) if prefix \
        else _fts_phrase(text)
    if column:
        match = f"{column} : ({match})"
    return _Match(match)


def _address_condition(column: str, value: str) -> tuple[str, list]:
    """``column`` of the trigram address index contains ``value`` (ASCII case ignored).

    The trigram index does not support LIKE's ESCAPE, so a ``%`` or ``_`` in the
    value is a wildcard there, and ``instr`` then insists on the literal text.
    """
    sql = f"m.seq IN (SELECT rowid FROM message_addresses WHERE {column} LIKE ?"
    params: list = [f"%{value}%"]
    if "%" in value or "_" in value:
        sql += f" AND instr(lower({column}), lower(?)) > 0"
        params.append(value)
    return sql + ")", params


def _date(value: str, key: str) -> tuple[float, bool]:
    """(Unix time, whether it is a whole day) for ``value`` (UTC unless it says)."""
    try:
        day = dt.date.fromisoformat(value)
        return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp(), True
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SearchError(f"{key}: wants a date like 2026-11-23, not {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp(), False


def _term_condition(key: str | None, value: str,
                    quoted: bool) -> tuple[str, list] | _Match | None:
    if key is None:
        return _fts_condition(None, value, prefix=not quoted)
    key = key.lower()
    if key == "subject":
        return _fts_condition("subject", value, prefix=not quoted)
    if key == "from":
        return _address_condition("sender", value)
    if key == "to":
        return _address_condition("recipients", value)
    if key == "has":
        if value.lower() in ("attachment", "attachments"):
            return "m.attachments > 0", []
        raise SearchError(f"has: knows only 'attachment', not {value!r}")
    if key == "is":
        if value.lower() == "read":
            return "m.is_read = 1", []
        if value.lower() == "unread":
            return "m.is_read = 0", []
        raise SearchError(f"is: knows 'read' and 'unread', not {value!r}")
    if key == "before":
        return "m.received_at < ?", [_date(value, key)[0]]
    if key == "after":
        moment, whole_day = _date(value, key)
        return "m.received_at >= ?", [moment + 86400 if whole_day else moment]
    # An unknown "word:" is just text (e.g. a URL or a time like 10:30).
    return _fts_condition(None, f"{key}:{value}", prefix=False)


def compile_query(query: str) -> tuple[str, list]:
    """Turn a search string into ``(where_sql, params)``; "1" matches everything."""
    conditions: list[str] = []
    params: list = []
    wanted: list[str] = []      # word-index terms, and those negated
    unwanted: list[str] = []
    # Control characters (a NUL ends an FTS5 string early) separate words like spaces.
    query = _CONTROL.sub(" ", query)
    for negate, key, value in _TERM.findall(query.strip()):
        quoted = value.startswith('"')
        value = value.strip('"')
        if not value:
            continue
        condition = _term_condition(key or None, value, quoted)
        if condition is None:
            continue
        if isinstance(condition, _Match):
            (unwanted if negate else wanted).append(condition)
            continue
        sql, values = condition
        conditions.append(f"NOT ({sql})" if negate else sql)
        params.extend(values)
    if wanted:
        # FTS5: "a AND b NOT c" is a and b and not c (NOT binds tighter than AND).
        match = " AND ".join(f"({m})" for m in wanted) + "".join(f" NOT ({m})" for m in unwanted)
        conditions.insert(0, _FTS_SQL)
        params.insert(0, match)
    else:
        for m in unwanted:      # FTS5 has no unary NOT: each is its own condition
            conditions.append(f"NOT ({_FTS_SQL})")
            params.append(m)
    return (" AND ".join(conditions) or "1"), params


# -- MailHog's /api/v2/search: case-insensitive substring matches ------------

MAILHOG_KINDS = ("from", "to", "containing")


def casefold_contains(haystack: object, needle: object) -> bool:
    """SQL function ``mh_contains``: does ``haystack`` (text or bytes) contain ``needle``?

    Unicode case-insensitive, unlike SQLite's ASCII-only LIKE.
    """
    if haystack is None or needle is None:
        return False
    if isinstance(haystack, (bytes, bytearray, memoryview)):
        haystack = bytes(haystack).decode("utf-8", "replace")
    return str(needle).casefold() in str(haystack).casefold()


def casefold_json_contains(document: object, needle: object) -> bool:
    """SQL function ``mh_json_contains``: does any string in a JSON list contain ``needle``?"""
    if document is None:
        return False
    try:
        values = json.loads(document)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return casefold_contains(document, needle)
    if isinstance(values, str):
        values = [values]
    return any(casefold_contains(value, needle) for value in values if isinstance(value, str))


def compile_mailhog_search(kind: str, query: str) -> tuple[str, list]:
    """MailHog's ``kind``/``query`` as ``(where_sql, params)`` over ``messages m``.

    ``from``: the envelope sender or the From header. ``to``: an envelope
    recipient (so BCC) or the To header. ``containing``: the raw message (every
    header and the body as sent) or its decoded subject and text, so RFC 2047
    subjects and quoted-printable bodies are found too.
    """
    if kind == "from":
        return ("(mh_contains(json_extract(m.envelope, '$.mail_from'), ?)"
                " OR mh_contains(m.from_addr, ?))", [query, query])
    if kind == "to":
        return ("(mh_json_contains(json_extract(m.envelope, '$.rcpt_tos'), ?)"
                " OR mh_json_contains(m.to_addrs, ?))", [query, query])
    if kind == "containing":
        return ("(EXISTS (SELECT 1 FROM raw r WHERE r.seq = m.seq AND mh_contains(r.data, ?))"
                " OR mh_contains(m.subject, ?) OR mh_contains(m.from_addr, ?)"
                " OR mh_json_contains(m.to_addrs, ?) OR mh_json_contains(m.cc_addrs, ?)"
                " OR mh_contains(json_extract(m.envelope, '$.mail_from'), ?)"
                " OR m.seq IN (SELECT rowid FROM message_text WHERE mh_contains(body, ?)))",
                [query] * 7)
    raise SearchError(f"kind must be one of {', '.join(MAILHOG_KINDS)}, not {kind!r}")
