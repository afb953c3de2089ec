"""What the message view and the API detail show, built once per message and cached.

A full MIME parse costs a millisecond or more per message (much more for big
ones), and one opened message is asked for several times in a row (the page,
its HTML frame, its inline images, the API). ``MessageViews`` keeps the parse of
the recently opened messages in a small LRU bounded by count and raw size.
Caching by id is safe because a message's bytes never change under its id (ids
are random and never reused); whether it still exists is always asked of the
store, so a deleted message is never shown from the cache.
"""
from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
from dataclasses import dataclass, field
from typing import Any

from .. import message as mime
from ..store import Store, StoredMessage

log = logging.getLogger(__name__)

CACHE_MESSAGES = 32
CACHE_BYTES = 64 * 1024 * 1024   # raw bytes; a parse holds a few times that


@dataclass
class MessageView:
    """One message, parsed, with what the views derive from the parse."""

    raw_size: int
    parsed: mime.ParsedMessage | None
    error: str | None = None                  # why the full parse failed, if it did
    decoded_sizes: dict[int, int] = field(default_factory=dict)
    content_ids: dict[str, int] = field(default_factory=dict)   # "<a@b>" → part index

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self.parsed.headers if self.parsed else []

    def part(self, index: int) -> Any:
        """The ``email.message.Message`` of part ``index``, or None."""
        if self.parsed is None:
            return None
        return mime.find_part(self.parsed.tree, index)

    def part_for_cid(self, reference: str) -> int | None:
        """The part index a ``cid:`` URL (RFC 2392) points to."""
        key = reference.strip().strip("<>")
        return self.content_ids.get(key) if key in self.content_ids else \
            self.content_ids.get(key.lower())


def build_view(raw: bytes) -> MessageView:
    """Parse ``raw`` for viewing; a broken message still gives what could be read."""
    try:
        parsed = mime.parse(raw)
    except Exception as error:  # the raw source is still shown
        log.warning("message does not parse: %r", error)
        return MessageView(len(raw), None, error=f"{type(error).__name__}: {error}")
    view = MessageView(len(raw), parsed)
    for info, (part, _depth) in zip(parsed.parts, mime.walk(parsed.tree)):
        if info.is_multipart:
            continue
        try:
            view.decoded_sizes[info.index] = len(mime.part_bytes(part))
        except Exception:
            view.decoded_sizes[info.index] = info.size
        if info.content_id:
            key = info.content_id.strip().strip("<>")
            view.content_ids.setdefault(key, info.index)
            view.content_ids.setdefault(key.lower(), info.index)
    return view


def recipients_only_in_envelope(stored: StoredMessage, view: MessageView) -> set[str]:
    """RCPT TO addresses that no To/Cc header names: the BCC recipients."""
    named = set()
    for name, value in view.headers:
        if name.lower() in ("to", "cc"):
            named.update(addr.lower() for _, addr in email.utils.getaddresses([value]) if addr)
    if not view.headers:   # no parse: fall back to the cheap summary
        for value in stored.summary.to + stored.summary.cc:
            named.update(addr.lower() for _, addr in email.utils.getaddresses([value]) if addr)
    return {rcpt for rcpt in stored.envelope.rcpt_tos if rcpt.lower() not in named}


class MessageViews:
    """The LRU of parsed messages in front of a store."""

    def __init__(self, store: Store, max_messages: int = CACHE_MESSAGES,
                 max_bytes: int = CACHE_BYTES):
        self.store = store
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._cache: collections.OrderedDict[str, MessageView] = collections.OrderedDict()
        self._bytes = 0

    async def get(self, message_id: str) -> tuple[StoredMessage, MessageView] | None:
        stored = await self.store.get(message_id)
        if stored is None:
            self._forget(message_id)
            return None
        view = self._cache.get(message_id)
        if view is None:
            view = await asyncio.to_thread(build_view, stored.raw)
            self._remember(message_id, view)
        else:
            self._cache.move_to_end(message_id)
        return stored, view

    def _remember(self, message_id: str, view: MessageView) -> None:
        if view.raw_size > self.max_bytes:
            return
        self._forget(message_id)
        self._cache[message_id] = view
        self._bytes += view.raw_size
        while len(self._cache) > self.max_messages or self._bytes > self.max_bytes:
            _, oldest = self._cache.popitem(last=False)
            self._bytes -= oldest.raw_size

    def _forget(self, message_id: str) -> None:
        view = self._cache.pop(message_id, None)
        if view is not None:
            self._bytes -= view.raw_size
