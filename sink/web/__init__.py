"""The HTTP side: one Starlette app of small mounted apps over the store.

URL space: ``/api/v3`` mailsink's API, ``/livez`` and ``/readyz`` health,
``/tls/ca.pem`` the generated CA certificate for clients to trust; the UI,
MailHog's ``/api/v1``/``/api/v2`` and the probe's ``/api/smtp*`` mount here too.
"""
from __future__ import annotations

from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ..events import EventBus
from ..settings import Settings
from ..store import Store
from ..smtp.chaos import Chaos
from .api import create_api
from .auth import BasicAuthMiddleware, load_htpasswd
from .chaos_api import create_chaos_api
from .errors import JSON_EXCEPTION_HANDLERS, json_error
from .guard import RequestGuard, guard_options
from .mailhog import mailhog_routes
from .probe import probe_routes
from .release_api import release_routes
from .ui import ui_routes
from .viewer import MessageViews


def create_app(settings: Settings, store: Store, events: EventBus,
               is_ready: Callable[[], bool], ca_pem: bytes | None = None,
               chaos: Chaos | None = None, release: Any = None) -> Starlette:
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

    views = MessageViews(store)
    routes = [
        Route("/livez", livez),
        Route("/readyz", readyz),
        *mailhog_routes(settings, store, events, chaos, release),
        *create_chaos_api(chaos),  # /api/v3/chaos, before the /api/v3 mount
        *release_routes(release),  # /api/v3/messages/{id}/release, likewise
        Route("/tls/ca.pem", tls_ca),
        Mount("/api/v3", app=create_api(store, events, views)),
    ]
    routes += probe_routes(settings)
    routes += ui_routes(store, events, views)
    app = Starlette(routes=with_web_path(settings.web_path, routes),
                    exception_handlers=JSON_EXCEPTION_HANDLERS)
    if settings.ui_auth_file:
        # Raises AuthFileError (a ValueError) for an unusable file.
        app.add_middleware(BasicAuthMiddleware, users=load_htpasswd(settings.ui_auth_file),
                           web_path=settings.web_path)
    # Added last, so it runs first: nothing else sees a request it refuses.
    app.add_middleware(RequestGuard, **guard_options(settings))
    return app


def with_web_path(prefix: str, routes: list[BaseRoute]) -> list[BaseRoute]:
    """Everything under ``prefix`` too (MailHog's MH_UI_WEB_PATH), for clients that add it.

    Pages reached under the prefix link under it (``templating.base_path``); the
    routes stay at / as well, for clients and habits that leave the prefix out."""
    if not prefix:
        return routes

    async def to_prefix(request: Request) -> Response:
        return RedirectResponse(prefix + "/")
    return [Route(prefix, to_prefix), Mount(prefix, routes=routes), *routes]
