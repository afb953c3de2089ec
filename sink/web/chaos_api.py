"""``/api/v3/chaos``: Jim and the fault rules, read and changed at run time.

``GET`` shows ``{"jim": {...} | null, "faults": [rule...], "seed": n | null}``.
``PUT`` changes what the body names: ``jim`` (MailHog's keys; a key left out
keeps MailHog's default; null turns Jim off), ``faults`` (a list of rules in the
README's syntax, replacing the old ones), ``seed`` (restarts the random draws).
``DELETE`` turns everything off.
"""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..smtp.chaos import JIM_KEYS, Chaos, FaultError, Jim, parse_faults
from .errors import json_error


def _jim_with_defaults(data: Any) -> Jim:
    if not isinstance(data, dict):
        raise FaultError("jim must be an object or null")
    defaults = Jim().to_json()
    known = {key.lower(): key for key, _ in JIM_KEYS}
    unknown = [key for key in data if str(key).lower() not in known]
    if unknown:
        raise FaultError(f"jim: unknown setting {unknown[0]!r}")
    merged = {**defaults, **{known[str(key).lower()]: value for key, value in data.items()}}
    return Jim.from_json(merged)


def create_chaos_api(chaos: Chaos | None) -> list:
    async def show(request: Request) -> Response:
        assert chaos is not None
        return JSONResponse(chaos.to_json())

    async def change(request: Request) -> Response:
        assert chaos is not None
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise FaultError("send a JSON object")
            unknown = set(body) - {"jim", "faults", "seed"}
            if unknown:
                raise FaultError(f"unknown key {sorted(unknown)[0]!r}; use jim, faults, seed")
            jim = chaos.jim
            if "jim" in body:
                jim = None if body["jim"] is None else _jim_with_defaults(body["jim"])
            faults = chaos.faults
            if "faults" in body:
                if not isinstance(body["faults"], list):
                    raise FaultError("faults must be a list of rules")
                faults = parse_faults(body["faults"])
            seed = body.get("seed", chaos.seed)
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise FaultError("seed must be a whole number or null")
        except ValueError as error:  # FaultError and bad JSON alike
            return json_error(400, str(error))
        # Validated in full first: a bad request changes nothing.
        if "jim" in body:
            chaos.jim = jim
            if jim is not None:
                chaos.configured_jim = jim
        if "faults" in body:
            chaos.set_faults(faults)
        if "seed" in body:
            chaos.reseed(seed)
        return JSONResponse(chaos.to_json())

    async def clear(request: Request) -> Response:
        assert chaos is not None
        chaos.jim = None
        chaos.set_faults([])
        return JSONResponse(chaos.to_json())

    if chaos is None:
        return []
    return [
        Route("/api/v3/chaos", show, methods=["GET"]),
        Route("/api/v3/chaos", change, methods=["PUT"]),
        Route("/api/v3/chaos", clear, methods=["DELETE"]),
    ]
