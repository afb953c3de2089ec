"""``POST /api/v3/messages/{id}/release``: mailsink's own release call.

Body: ``{"server": "<saved name>"}`` or ``{"host", "port", "tls": "auto|starttls|
implicit|none", "insecure": false, "username", "password", "mechanism"}``, plus
``"to"`` (an address or a list; a saved server's email otherwise) and ``"from"``
(default ``nobody@<hostname>``, as MailHog). Answers what the server said, with the
probe's transcript; a failure is ``{"error", "stage", "code", "enhanced_code"}``
with 400 (bad input), 404 (no such message) or 502 (the server refused).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..release import OutgoingServer, Releaser, ReleaseError, server_from_json


def _recipients(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ReleaseError(400, "to must be an address or a list of addresses")


def release_routes(release: Releaser | None) -> list:
    async def release_message(request: Request) -> Response:
        assert release is not None
        message_id = request.path_params["id"]
        try:
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError as error:
                raise ReleaseError(400, f"the body is not JSON: {error}") from None
            if not isinstance(body, dict):
                raise ReleaseError(400, "send a JSON object")
            if body.get("server"):
                server = release.resolve(OutgoingServer(name=str(body["server"])))
            else:
                fields = {k: v for k, v in body.items() if k not in ("to", "from", "server",
                                                                      "allow_plaintext_auth")}
                server = release.resolve(dataclasses.replace(
                    server_from_json(fields, "release"), name="", save=False))
            sender = body.get("from")
            if sender is not None and not isinstance(sender, str):
                raise ReleaseError(400, "from must be an address")
            result = await release.release(
                message_id, server, _recipients(body.get("to")), sender,
                allow_plaintext_auth=body.get("allow_plaintext_auth") is True)
        except ReleaseError as error:
            return JSONResponse(error.to_json(), status_code=error.status)
        return JSONResponse({
            "released": message_id,
            "server": f"{result.host}:{result.port}",
            "accepted": result.accepted,
            "rejected": [{"address": r.address, "reply": str(r.reply)} for r in result.rejected],
            "reply": str(result.final_reply) if result.final_reply else None,
            "tls": result.tls is not None,
            "transcript": result.transcript.lines() if result.transcript else [],
        })

    if release is None:
        return []
    return [Route("/api/v3/messages/{id}/release", release_message, methods=["POST"])]
