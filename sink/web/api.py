"""mailsink's own JSON API, mounted at ``/api/v3``: thin adapters over the store."""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import message as mime
from ..events import EventBus
from ..search import SearchError
from ..store import Store, StoredMessage
from .errors import JSON_EXCEPTION_HANDLERS, json_error

MAX_LIMIT = 1000


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


def create_api(store: Store, events: EventBus) -> Starlette:
    async def list_messages(request: Request) -> Response:
        try:
            start = _int_param(request, "start", 0, 0, 10**9)
            limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
            page = await store.list(start, limit, request.query_params.get("query"))
        except (ValueError, SearchError) as error:
            return json_error(400, str(error))
        return JSONResponse({"total": page.total, "start": page.start,
                             "count": len(page.summaries),
                             "messages": [s.to_json() for s in page.summaries]})

    async def get_message(request: Request) -> Response:
        stored = await store.get(request.path_params["id"])
        if stored is None:
            return json_error(404, "message not found")
        parsed = await asyncio.to_thread(mime.parse, stored.raw)
        return JSONResponse(message_detail(stored, parsed))

    async def get_raw(request: Request) -> Response:
        raw = await store.get_raw(request.path_params["id"])
        if raw is None:
            return json_error(404, "message not found")
        return Response(raw, media_type="message/rfc822")

    async def delete_message(request: Request) -> Response:
        deleted = await store.delete([request.path_params["id"]])
        if not deleted:
            return json_error(404, "message not found")
        events.publish("deleted", ids=deleted)
        return JSONResponse({"deleted": deleted})

    async def delete_all(request: Request) -> Response:
        count = await store.delete_all()
        events.publish("deleted", all=True)
        return JSONResponse({"deleted": count})

    return Starlette(routes=[
        Route("/messages", list_messages, methods=["GET"]),
        Route("/messages", delete_all, methods=["DELETE"]),
        Route("/messages/{id}", get_message, methods=["GET"]),
        Route("/messages/{id}", delete_message, methods=["DELETE"]),
        Route("/messages/{id}/raw", get_raw, methods=["GET"]),
    ], exception_handlers=JSON_EXCEPTION_HANDLERS)
