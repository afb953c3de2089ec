"""The inspector's HTML pages: the inbox, its row fragments, the message view, and
the message's HTML body as a sandboxed document.

Pages are rendered on the server (Jinja2, autoescaped); ``static/app.js`` adds
live updates (the ``/api/v3/ws`` WebSocket), endless scroll (keyset pages of
rows from ``/inbox/rows``), selection and the actions, all through ``/api/v3``.
"""
from __future__ import annotations

import os
import urllib.parse

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..events import EventBus
from ..search import SearchError
from ..store import Store
from . import frame
from .api import COUNT_LIMIT, part_url
from .templating import PAGE_HEADERS, base_path, render
from .viewer import MessageViews, recipients_only_in_envelope

PAGE_SIZE = 50
RAW_SHOWN = 512 * 1024   # the raw tab shows this much; the download has it all
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


def header_block(raw: bytes) -> str:
    """The raw header block, up to the first empty line (CRLF or bare LF)."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0),
              default=len(raw))
    return raw[:end].decode("utf-8", "replace")


def ui_routes(store: Store, events: EventBus, views: MessageViews) -> list:
    async def rows_page(query: str, before: str | None, count: bool):
        """(summaries, error, more, matching) for one page of the inbox."""
        try:
            page = await store.list(0, PAGE_SIZE, query, before,
                                    count_limit=COUNT_LIMIT if count else 0)
        except (SearchError, ValueError) as error:
            return [], str(error), False, ""
        matching = f"{page.total:,}" + ("" if page.total_exact else "+")
        return page.summaries, None, len(page.summaries) == PAGE_SIZE, matching

    async def inbox(request: Request) -> Response:
        query = request.query_params.get("q", "")
        summaries, error, more, matching = await rows_page(query, None, count=True)
        total, unread = store.counts()
        return render(request, "inbox.html", headers=PAGE_HEADERS, page="inbox", query=query,
                      summaries=summaries, error=error, more=more, total=total,
                      unread=unread, matching=matching)

    async def rows(request: Request) -> Response:
        query = request.query_params.get("q", "")
        # Rows for endless scroll and live updates: the page shows no count for them.
        summaries, error, more, matching = await rows_page(
            query, request.query_params.get("before") or None, count=False)
        status = 400 if error else 200
        return render(request, "_rows.html", status_code=status, headers=PAGE_HEADERS,
                      summaries=summaries, error=error, more=more, matching=matching)

    async def message(request: Request) -> Response:
        message_id = request.path_params["id"]
        found = await views.get(message_id)
        if found is None:
            total, unread = store.counts()
            return render(request, "not_found.html", status_code=404, headers=PAGE_HEADERS,
                          page="not-found", query="", total=total, unread=unread)
        stored, view = found
        if not stored.summary.read:
            if await store.mark_read([message_id], True):
                events.publish("read", ids=[message_id])
        total, unread = store.counts()
        raw_text = stored.raw[:RAW_SHOWN].decode("utf-8", "replace")
        html = view.parsed.html if view.parsed else None
        return render(
            request, "message.html", headers=PAGE_HEADERS, page="message", query="",
            total=total, unread=unread, m=stored.summary, envelope=stored.envelope, view=view,
            bcc=recipients_only_in_envelope(stored, view), raw_text=raw_text,
            raw_truncated=len(stored.raw) > RAW_SHOWN, raw_size=len(stored.raw),
            raw_headers=header_block(stored.raw),
            remote_images=frame.count_remote_images(html),
            quoted_id=urllib.parse.quote(message_id), part_url=part_url)

    async def message_html(request: Request) -> Response:
        message_id = request.path_params["id"]
        found = await views.get(message_id)
        if found is None:
            return HTMLResponse("message not found", status_code=404)
        _, view = found
        html = view.parsed.html if view.parsed else None
        if html is None:
            return HTMLResponse("this message has no HTML part", status_code=404)

        base = base_path(request)

        def resolve(reference: str) -> str | None:
            index = view.part_for_cid(reference)
            return None if index is None else base + part_url(message_id, index) + "?inline=1"

        body = frame.rewrite_html(html, resolve)
        origin = f"{request.url.scheme}://{request.headers.get('host', '')}"
        policy = frame.content_security_policy(
            origin, base + part_url(message_id, 0)[:-1], bool(request.query_params.get("remote")))
        return HTMLResponse(body, headers={
            "Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-DNS-Prefetch-Control": "off",
            "Cache-Control": "private, no-cache"})

    return [
        Route("/", inbox, methods=["GET"]),
        Route("/inbox/rows", rows, methods=["GET"]),
        Route("/message/{id}", message, methods=["GET"]),
        Route("/message/{id}/html", message_html, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]

