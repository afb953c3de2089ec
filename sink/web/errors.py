"""JSON errors for every HTTP API: ``{"error": "..."}`` with the right status."""
from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


def json_error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, exc.detail or "error")


async def server_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return json_error(500, f"internal error: {type(exc).__name__}")


# Give these to every Starlette (sub-)app so that 404/405/500 are JSON everywhere.
JSON_EXCEPTION_HANDLERS = {HTTPException: http_exception_handler, 500: server_error_handler}
