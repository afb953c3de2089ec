"""The HTTP side: one Starlette app of small mounted apps over the store.

URL space: ``/api/v3`` mailsink's API, ``/livez`` and ``/readyz`` health,
``/tls/ca.pem`` the generated CA certificate for clients to trust; the UI,
MailHog's ``/api/v1``/``/api/v2`` and the probe's ``/api/smtp*`` mount here too.
"""
from __future__ import annotations

from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ..events import EventBus
from ..settings import Settings
from ..store import Store
from .api import create_api
from .errors import JSON_EXCEPTION_HANDLERS, json_error


def create_app(settings: Settings, store: Store, events: EventBus,
               is_ready: Callable[[], bool], ca_pem: bytes | None = None) -> Starlette:
    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)

    async def tls_ca(request: Request) -> Response:
        if ca_pem is None:
            return json_error(404, "no generated CA: TLS is off or uses the certificate "
                                   "given with --tls-cert")
        return Response(ca_pem, media_type="application/x-pem-file",
                        headers={"Content-Disposition": 'attachment; filename="mailsink-ca.pem"'})

    routes = [
        Route("/livez", livez),
        Route("/readyz", readyz),
        Route("/tls/ca.pem", tls_ca),
        Mount("/api/v3", app=create_api(store, events)),
    ]
    return Starlette(routes=routes, exception_handlers=JSON_EXCEPTION_HANDLERS)
