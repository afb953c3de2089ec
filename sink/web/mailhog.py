"""MailHog's HTTP API (``/api/v1``, ``/api/v2``): thin adapters over the store.

Shapes, status codes and quirks clients rely on are MailHog's (see
``/api/v1`` and ``/api/v2`` in README.md): DELETE and release answer with an
empty body, ``limit`` defaults to 50 and is capped at 250, bad paging values
are ignored as MailHog ignores them. The message JSON comes from
``sink.mailhog_json``. Where MailHog answers an unknown id with ``null`` or 500,
we answer 404.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import email.message
import json
import logging
import re
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import mailhog_json
from ..events import EventBus, until_closing
from ..message import decode_header_value
from ..release import ReleaseError
from ..settings import Settings
from ..smtp.chaos import Chaos, FaultError, Jim
from ..store import Store, StoredMessage
from .api import content_disposition
from .errors import JSON_EXCEPTION_HANDLERS, json_error

log = logging.getLogger(__name__)

V2_DEFAULT_LIMIT = 50
V2_MAX_LIMIT = 250
V1_LIST_LIMIT = 1000
KEEPALIVE_SECONDS = 60.0
V1_METHODS = "OPTIONS,GET,POST,DELETE"
V2_METHODS = "OPTIONS,GET,PUT,POST,DELETE"


class MailhogContext:
    """What the MailHog routes need: the store, events, settings, chaos and release."""

    def __init__(self, settings: Settings, store: Store, events: EventBus,
                 chaos: Chaos | None, release: Any = None):
        self.settings = settings
        self.store = store
        self.events = events
        self.chaos = chaos
        self.release = release  # sink.release.Releaser, or None when not available

    def to_json(self, stored: StoredMessage) -> dict[str, Any]:
        envelope = stored.envelope
        arguments = (stored.summary.id, stored.raw, envelope.mail_from, envelope.rcpt_tos,
                     envelope.helo, envelope.received_at or stored.summary.received_at,
                     self.settings.hostname)
        try:
            return mailhog_json.message_json(*arguments)
        except Exception:
            # One odd message must never break a list or an event stream for everyone.
            log.exception("MailHog JSON for %s: MIME split failed", stored.summary.id)
            return mailhog_json.message_json(*arguments, with_mime=False)

    async def many_json(self, ids: list[str]) -> list[dict[str, Any]]:
        stored = await self.store.get_many(ids)
        # Building the JSON is pure Python work: keep it off the event loop.
        return await asyncio.to_thread(lambda: [self.to_json(message) for message in stored])


def _paging(request: Request) -> tuple[int, int]:
    """MailHog's start/limit: anything not a positive whole number means the default."""
    def positive(name: str) -> int | None:
        try:
            value = int(request.query_params.get(name, ""))
        except ValueError:
            return None
        # Past the largest SQLite integer is "not a number we can use": the default.
        return value if 0 < value < 2**62 else None
    start = positive("start") or 0
    limit = min(positive("limit") or V2_DEFAULT_LIMIT, V2_MAX_LIMIT)
    return start, limit


def _items(total: int, start: int, items: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"total": total, "count": len(items), "start": start, "items": items})


def _not_found() -> Response:
    return json_error(404, "message not found")


# -- the part download --------------------------------------------------------------

# Only these part headers are copied to the HTTP response: a message must not be
# able to set cookies, caching or security headers on our origin.
# The part's own headers that describe the bytes we serve (never its Content-Encoding,
# Content-Location or the like, which would make HTTP clients misread the response).
_COPIED_PART_HEADERS = ("content-type", "content-id", "content-description")


def _header_safe(value: str) -> str:
    """A header value HTTP can carry: no control characters, Latin-1 only."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", value)
    return cleaned.encode("latin-1", "replace").decode("latin-1")


def _part_filename(part_headers: dict[str, list[str]]) -> str | None:
    """The file name a part's headers give (RFC 2231 and RFC 2047 decoded)."""
    holder = email.message.Message()
    for name, values in part_headers.items():
        if name.lower() in ("content-disposition", "content-type") and values:
            holder[name] = values[-1]
    try:
        filename = holder.get_filename()
    except Exception:
        return None
    return decode_header_value(filename) if filename else None


def part_download(message_id: str, index: int, part: dict[str, Any]) -> Response:
    """Part ``index`` of ``MIME.Parts`` as a download, as MailHog serves it."""
    headers: dict[str, str] = {}
    encoding = ""
    filename = f"{message_id}-part-{index}"
    for name, values in part["Headers"].items():
        if not values:
            continue
        lowered = name.lower()
        if lowered == "content-transfer-encoding" and not encoding:
            encoding = values[0].strip().lower()
        if lowered in _COPIED_PART_HEADERS:
            headers[name] = _header_safe(", ".join(values))
    filename = _part_filename(part["Headers"]) or filename
    body = part["Body"].encode("utf-8")
    if encoding == "base64":
        try:
            body = base64.b64decode(re.sub(rb"\s+", b"", body))
        except (binascii.Error, ValueError):
            pass  # MailHog serves it undecoded when it is not valid base64
    # Always a download, never rendered on our origin (a part can be HTML).
    headers["Content-Disposition"] = content_disposition("attachment", filename)
    headers["X-Content-Type-Options"] = "nosniff"
    media_type = None
    for key in [k for k in headers if k.lower() == "content-type"]:
        media_type = headers.pop(key)
    return Response(body, media_type=media_type or "application/octet-stream", headers=headers)


# -- live events: SSE (v1) and WebSocket (v2) ----------------------------------------

async def _new_messages(context: MailhogContext, queue: asyncio.Queue,
                        timeout: float | None) -> AsyncIterator[dict[str, Any] | None]:
    """Each new message's JSON as it arrives; None when ``timeout`` passes quietly.

    Ends when the server shuts down (a "closing" event), so the stream closes."""
    async for event in until_closing(queue, timeout):
        if event is None:
            yield None
            continue
        if event.kind != "new" or "id" not in event.data:
            continue
        items = await context.many_json([event.data["id"]])
        if items:
            yield items[0]


class _ClosingStream(StreamingResponse):
    """A stream that leaves its event subscription however it ends (even unstarted)."""

    def __init__(self, subscription: Any, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.subscription.__aexit__(None, None, None)


# -- CORS, as MailHog does it --------------------------------------------------------

class MailhogCORS:
    """Adds MailHog's CORS headers when an origin is configured; answers OPTIONS."""

    def __init__(self, app: ASGIApp, origin: str, methods: str):
        self.app = app
        self.headers = [(b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-methods", methods.encode()),
                        (b"access-control-allow-headers", b"Content-Type")] if origin else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await Response(status_code=200, headers={k.decode(): v.decode()
                                                     for k, v in self.headers})(
                scope, receive, send)
            return

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start" and self.headers:
                message = {**message, "headers": list(message.get("headers", [])) + self.headers}
            await send(message)
        await self.app(scope, receive, send_with_cors)


# -- the two APIs ----------------------------------------------------------------------

def create_v1(context: MailhogContext) -> ASGIApp:
    store = context.store

    async def list_messages(request: Request) -> Response:
        page = await store.list(0, V1_LIST_LIMIT)
        return JSONResponse(await context.many_json([s.id for s in page.summaries]))

    async def delete_all(request: Request) -> Response:
        await store.delete_all()
        context.events.publish("deleted", all=True)
        return Response(status_code=200)

    async def get_message(request: Request) -> Response:
        items = await context.many_json([request.path_params["id"]])
        return JSONResponse(items[0]) if items else _not_found()

    async def delete_message(request: Request) -> Response:
        deleted = await store.delete([request.path_params["id"]])
        if not deleted:
            return _not_found()
        context.events.publish("deleted", ids=deleted)
        return Response(status_code=200)

    async def download(request: Request) -> Response:
        message_id = request.path_params["id"]
        raw = await store.get_raw(message_id)
        if raw is None:
            return _not_found()
        # The exact bytes received (MailHog rebuilds them from its header map).
        return Response(raw, media_type="message/rfc822", headers={
            "Content-Disposition": _header_safe(f'attachment; filename="{message_id}.eml"')})

    async def download_part(request: Request) -> Response:
        message_id = request.path_params["id"]
        items = await context.many_json([message_id])
        if not items:
            return _not_found()
        parts = (items[0]["MIME"] or {}).get("Parts", [])
        try:
            index = int(request.path_params["part"])
        except ValueError:
            return json_error(400, "the part number must be a whole number")
        if not 0 <= index < len(parts):
            return json_error(404, f"message {message_id} has no part {index}")
        return part_download(message_id, index, parts[index])

    async def release(request: Request) -> Response:
        if context.release is None:
            return json_error(503, "release is not available")
        try:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise ReleaseError(400, "the body must be JSON: {\"Host\", \"Port\", "
                                        "\"Email\", ...}") from None
            await context.release.release_mailhog(request.path_params["id"], body)
        except ReleaseError as error:
            # MailHog answers a failed delivery with 500.
            status = 500 if error.status == 502 else error.status
            return JSONResponse(error.to_json(), status_code=status)
        return Response(status_code=200)

    async def event_stream(request: Request) -> Response:
        subscription = context.events.subscribe()
        queue = await subscription.__aenter__()  # before the response: no event is missed

        async def body() -> AsyncIterator[str]:
            async for item in _new_messages(context, queue, KEEPALIVE_SECONDS):
                if item is None:
                    yield "keepalive: \n\n"
                    continue
                text = json.dumps(item, indent=2, ensure_ascii=False)
                yield "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return _ClosingStream(subscription, body(), media_type="text/event-stream",
                              headers=headers)

    app = Starlette(routes=[
        Route("/messages", list_messages, methods=["GET"]),
        Route("/messages", delete_all, methods=["DELETE"]),
        Route("/messages/{id}", get_message, methods=["GET"]),
        Route("/messages/{id}", delete_message, methods=["DELETE"]),
        Route("/messages/{id}/download", download, methods=["GET"]),
        Route("/messages/{id}/mime/part/{part}/download", download_part, methods=["GET"]),
        Route("/messages/{id}/release", release, methods=["POST"]),
        Route("/events", event_stream, methods=["GET"]),
    ], exception_handlers=JSON_EXCEPTION_HANDLERS)
    return MailhogCORS(app, context.settings.cors_origin, V1_METHODS)


async def _json_body(request: Request) -> Any:
    """The request's JSON; None for an empty body or ``null``; ValueError when malformed."""
    body = await request.body()
    if not body.strip():
        return None
    return json.loads(body)


def create_v2(context: MailhogContext) -> ASGIApp:
    store = context.store
    chaos = context.chaos

    async def list_messages(request: Request) -> Response:
        start, limit = _paging(request)
        page = await store.list(start, limit)
        return _items(page.total, start, await context.many_json([s.id for s in page.summaries]))

    async def search(request: Request) -> Response:
        start, limit = _paging(request)
        kind = request.query_params.get("kind", "")
        query = request.query_params.get("query", "")
        if kind not in ("from", "to", "containing"):
            return json_error(400, "kind must be from, to or containing")
        if not query:
            return json_error(400, "query must not be empty")
        page = await store.search_mailhog(kind, query, start, limit)
        return _items(page.total, start, await context.many_json([s.id for s in page.summaries]))

    def jim_off() -> Response:
        return json_error(404, "Jim is not here (turn him on with POST /api/v2/jim)")

    async def get_jim(request: Request) -> Response:
        if chaos is None or chaos.jim is None:
            return jim_off()
        return JSONResponse(chaos.jim.to_json())

    async def create_jim(request: Request) -> Response:
        if chaos is None:
            return json_error(503, "chaos is not available")
        if chaos.jim is not None:
            return json_error(400, "Jim is already here (change him with PUT)")
        try:
            body = await _json_body(request)
            jim = chaos.configured_jim if body is None else Jim.from_json(body)
        except (ValueError, FaultError) as error:
            return json_error(400, f"bad Jim settings: {error}")
        chaos.configured_jim = chaos.jim = jim
        return Response(status_code=201)

    async def update_jim(request: Request) -> Response:
        if chaos is None or chaos.jim is None:
            return jim_off()
        try:
            body = await _json_body(request)
            if body is None:
                raise FaultError("send Jim's settings as a JSON object")
            jim = Jim.from_json(body)
        except (ValueError, FaultError) as error:
            return json_error(400, f"bad Jim settings: {error}")
        chaos.configured_jim = chaos.jim = jim
        return Response(status_code=200)

    async def delete_jim(request: Request) -> Response:
        if chaos is None or chaos.jim is None:
            return jim_off()
        chaos.jim = None
        return Response(status_code=200)

    async def outgoing_smtp(request: Request) -> Response:
        servers = context.release.servers_json() if context.release is not None else {}
        return JSONResponse(servers)

    async def websocket(socket: WebSocket) -> None:
        # Other sites' pages are refused by the request guard (sink/web/guard.py).
        async with context.events.subscribe() as queue:
            await socket.accept()
            # A reader notices the client leaving while the writer waits for mail.
            closed = asyncio.ensure_future(_wait_closed(socket))
            try:
                async for item in _until(closed, _new_messages(context, queue, None)):
                    await socket.send_text(json.dumps(item, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError):
                pass
            finally:
                closed.cancel()

    app = Starlette(routes=[
        Route("/messages", list_messages, methods=["GET"]),
        Route("/search", search, methods=["GET"]),
        Route("/jim", get_jim, methods=["GET"]),
        Route("/jim", create_jim, methods=["POST"]),
        Route("/jim", update_jim, methods=["PUT"]),
        Route("/jim", delete_jim, methods=["DELETE"]),
        Route("/outgoing-smtp", outgoing_smtp, methods=["GET"]),
        WebSocketRoute("/websocket", websocket),
    ], exception_handlers=JSON_EXCEPTION_HANDLERS)
    return MailhogCORS(app, context.settings.cors_origin, V2_METHODS)


async def _wait_closed(socket: WebSocket) -> None:
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _until(done: asyncio.Future, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Items from ``items`` until ``done`` completes."""
    iterator = items.__aiter__()
    while not done.done():
        following = asyncio.ensure_future(iterator.__anext__())
        await asyncio.wait({following, done}, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()
            return
        yield following.result()


def mailhog_routes(settings: Settings, store: Store, events: EventBus,
                   chaos: Chaos | None, release: Any = None) -> list:
    """The mounts for ``/api/v1`` and ``/api/v2``, to put in the app's routes."""
    context = MailhogContext(settings, store, events, chaos, release)
    return [Mount("/api/v1", app=create_v1(context)), Mount("/api/v2", app=create_v2(context))]
