"""mailsink's own JSON API, mounted at ``/api/v3``: thin adapters over the store.

Every call is listed in ``openapi.py`` (served at ``/api/v3/openapi.json``, shown
at ``/api/v3/docs``) and in the README. State changes use DELETE and PATCH with
JSON bodies: a browser will not send those cross-site without a CORS preflight,
which this API never grants, so other web pages cannot delete or mark mail.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.parse
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .. import message as mime
from ..events import EventBus, until_closing
from ..search import SearchError
from ..store import Store, StoredMessage
from . import openapi
from .errors import JSON_EXCEPTION_HANDLERS, json_error
from .templating import PAGE_HEADERS, render
from .viewer import MessageView, MessageViews, recipients_only_in_envelope

MAX_LIMIT = 1000
COUNT_LIMIT = 10_000   # a search's total is counted up to here (counting reads every match)
KEEPALIVE_SECONDS = 15.0
# Served parts can be anything (text/html included): never active in our origin.
PART_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
                                           "style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|]+')


def _int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}")
    return value


def message_detail(stored: StoredMessage, parsed: mime.ParsedMessage) -> dict[str, Any]:
    """The JSON for one message: summary, envelope and decoded headers in order."""
    return {
        **stored.summary.to_json(),
        "envelope": stored.envelope.to_dict(),
        "headers": [{"name": name, "value": value} for name, value in parsed.headers],
    }


def part_url(message_id: str, index: int) -> str:
    return f"/api/v3/messages/{urllib.parse.quote(message_id)}/parts/{index}"


def part_json(message_id: str, part: mime.Part, view: MessageView) -> dict[str, Any]:
    data = {
        "index": part.index, "content_type": part.content_type, "charset": part.charset,
        "encoding": part.encoding, "disposition": part.disposition, "filename": part.filename,
        "content_id": part.content_id, "size": view.decoded_sizes.get(part.index, part.size),
        "encoded_size": part.size, "depth": part.depth, "is_multipart": part.is_multipart,
        "defects": part.defects,
    }
    if not part.is_multipart:
        data["url"] = part_url(message_id, part.index)
    return data


def message_json(stored: StoredMessage, view: MessageView) -> dict[str, Any]:
    """Everything about one message: summary, envelope (BCC marked), headers, parts."""
    message_id = stored.summary.id
    parsed = view.parsed
    envelope = stored.envelope.to_dict()
    envelope["bcc"] = sorted(recipients_only_in_envelope(stored, view))
    data = {
        **stored.summary.to_json(),
        "envelope": envelope,
        "headers": [{"name": name, "value": value} for name, value in view.headers],
        "text": parsed.text if parsed else None,
        "html": parsed.html if parsed else None,
        "parts": [part_json(message_id, p, view) for p in parsed.parts] if parsed else [],
        "attachment_parts": [part_json(message_id, p, view) for p in parsed.attachments]
        if parsed else [],
        "defects": parsed.defects if parsed else [],
        "parse_error": view.error,
        "raw_url": f"/api/v3/messages/{urllib.parse.quote(message_id)}/raw",
    }
    return data


def content_disposition(kind: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name; mail names are hostile."""
    cleaned = _UNSAFE_FILENAME.sub("_", filename).strip(" .") or "download"
    fallback = cleaned.encode("ascii", "replace").decode().replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(cleaned)}"


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _ids(data: dict[str, Any]) -> list[str] | None:
    ids = data.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("ids must be a list of message ids")
    return ids


def _read_flag(data: dict[str, Any]) -> bool:
    read = data.get("read")
    if not isinstance(read, bool):
        raise ValueError('the body must say {"read": true} or {"read": false}')
    return read


def create_api(store: Store, events: EventBus, views: MessageViews | None = None) -> Starlette:
    views = views or MessageViews(store)

    async def list_messages(request: Request) -> Response:
        try:
            start = _int_param(request, "start", 0, 0, 10**9)
            limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
            before = request.query_params.get("before") or None
            page = await store.list(start, limit, request.query_params.get("query"), before,
                                    count_limit=COUNT_LIMIT)
        except (ValueError, SearchError) as error:
            return json_error(400, str(error))
        _, unread = store.counts()
        more = len(page.summaries) == limit
        return JSONResponse({"total": page.total, "total_exact": page.total_exact,
                             "unread": unread, "start": page.start,
                             "count": len(page.summaries),
                             "next_before": page.summaries[-1].id if more else None,
                             "messages": [s.to_json() for s in page.summaries]})

    async def get_message(request: Request) -> Response:
        found = await views.get(request.path_params["id"])
        if found is None:
            return json_error(404, "message not found")
        return JSONResponse(message_json(*found))

    async def get_raw(request: Request) -> Response:
        message_id = request.path_params["id"]
        raw = await store.get_raw(message_id)
        if raw is None:
            return json_error(404, "message not found")
        headers = {"X-Content-Type-Options": "nosniff"}
        if request.query_params.get("download"):
            headers["Content-Disposition"] = content_disposition("attachment", f"{message_id}.eml")
        return Response(raw, media_type="message/rfc822", headers=headers)

    async def get_part(request: Request) -> Response:
        try:
            index = int(request.path_params["index"])
        except ValueError:
            return json_error(400, "part index must be a whole number")
        found = await views.get(request.path_params["id"])
        if found is None:
            return json_error(404, "message not found")
        _, view = found
        part = view.part(index)
        if part is None or part.is_multipart():
            return json_error(404, f"no leaf part {index} in this message")
        data = await asyncio.to_thread(mime.part_bytes, part)
        info = view.parsed.parts[index] if view.parsed else None
        filename = (info.filename if info else None) or f"part-{index}"
        kind = "inline" if request.query_params.get("inline") else "attachment"
        media_type = part.get_content_type()
        if media_type.startswith("text/") and part.get_content_charset():
            media_type += f"; charset={part.get_content_charset()}"
        return Response(data, media_type=media_type, headers={
            **PART_HEADERS, "Content-Disposition": content_disposition(kind, filename)})

    async def mark_message(request: Request) -> Response:
        try:
            read = _read_flag(await _json_body(request))
        except ValueError as error:
            return json_error(400, str(error))
        message_id = request.path_params["id"]
        changed = await store.mark_read([message_id], read)
        if not changed and await store.get_raw(message_id) is None:
            return json_error(404, "message not found")
        if changed:
            events.publish("read" if read else "unread", ids=changed)
        return JSONResponse({"changed": changed})

    async def mark_many(request: Request) -> Response:
        try:
            data = await _json_body(request)
            read, ids = _read_flag(data), _ids(data)
        except ValueError as error:
            return json_error(400, str(error))
        if ids is None:
            count = await store.mark_all_read(read)
            if count:
                events.publish("read" if read else "unread", all=True)
            return JSONResponse({"changed": count})
        changed = await store.mark_read(ids, read)
        if changed:
            events.publish("read" if read else "unread", ids=changed)
        return JSONResponse({"changed": changed})

    async def delete_message(request: Request) -> Response:
        deleted = await store.delete([request.path_params["id"]])
        if not deleted:
            return json_error(404, "message not found")
        events.publish("deleted", ids=deleted)
        return JSONResponse({"deleted": deleted})

    async def delete_many(request: Request) -> Response:
        """With ``{"ids": [...]}`` those messages; with no body, every message."""
        try:
            ids = _ids(await _json_body(request))
        except ValueError as error:
            return json_error(400, str(error))
        if ids is not None:
            deleted = await store.delete(ids)
            if deleted:
                events.publish("deleted", ids=deleted)
            return JSONResponse({"deleted": deleted})
        count = await store.delete_all()
        events.publish("deleted", all=True)
        return JSONResponse({"deleted": count})

    async def websocket_events(websocket: WebSocket) -> None:
        await event_socket(websocket, store, events)

    async def event_stream(request: Request) -> Response:
        return StreamingResponse(server_sent_events(store, events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi.DESCRIPTION)

    async def docs(request: Request) -> Response:
        return render(request, "api_docs.html", spec=openapi.DESCRIPTION, page="api", query="",
                      headers=PAGE_HEADERS)

    async def index(request: Request) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + "/docs", status_code=307)

    return Starlette(routes=[
        Route("/", index, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/events", event_stream, methods=["GET"]),
        WebSocketRoute("/ws", websocket_events),
        Route("/messages", list_messages, methods=["GET"]),
        Route("/messages", delete_many, methods=["DELETE"]),
        Route("/messages", mark_many, methods=["PATCH"]),
        Route("/messages/{id}", get_message, methods=["GET"]),
        Route("/messages/{id}", delete_message, methods=["DELETE"]),
        Route("/messages/{id}", mark_message, methods=["PATCH"]),
        Route("/messages/{id}/raw", get_raw, methods=["GET"]),
        Route("/messages/{id}/parts/{index}", get_part, methods=["GET"]),
    ], exception_handlers=JSON_EXCEPTION_HANDLERS)


async def live_events(store: Store, events: EventBus) -> AsyncIterator[tuple[str, dict] | None]:
    """``(kind, data)``: one "counts" first, then new / deleted / read / unread as
    they happen, each with the current ``total`` and ``unread``; None when nothing
    happened for a while (a chance to send a keep-alive). Ends at shutdown."""
    async with events.subscribe() as queue:
        total, unread = store.counts()
        yield "counts", {"total": total, "unread": unread}
        async for event in until_closing(queue, KEEPALIVE_SECONDS):
            if event is None:
                yield None
                continue
            total, unread = store.counts()
            yield event.kind, {**event.data, "total": total, "unread": unread}


async def server_sent_events(store: Store, events: EventBus) -> AsyncIterator[str]:
    """``live_events`` as ``text/event-stream``."""
    yield "retry: 1000\n\n"
    async for item in live_events(store, events):
        if item is None:
            yield ": keep-alive\n\n"
        else:
            yield f"event: {item[0]}\ndata: {json.dumps(item[1])}\n\n"


async def event_socket(websocket: WebSocket, store: Store, events: EventBus) -> None:
    """``live_events`` over a WebSocket, one JSON object per event with its kind in
    ``"event"``. The UI uses this one: browsers allow only six HTTP connections per
    host, and every open tab holding an event stream would use one of them up."""
    await websocket.accept()

    async def send_events() -> None:
        async for item in live_events(store, events):
            if item is not None:
                await websocket.send_text(json.dumps({"event": item[0], **item[1]}))
        await websocket.close(1001)          # the server is going away

    sender = asyncio.create_task(send_events())
    try:
        while True:                          # until the client goes (or sends close)
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
