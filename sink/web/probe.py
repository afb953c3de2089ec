"""Mounts the probe's HTTP endpoints (``/api/smtp``, ``/api/smtps``) - or refuses them.

They make this server open connections to other hosts, so they are on only when the
HTTP side listens on loopback (``--probe-api auto``, the default) or the operator
says ``--probe-api on``; ``--probe-allow-hosts`` limits where they may connect.
"""
from __future__ import annotations

import ipaddress

from starlette.routing import Mount

from probe.http import create_disabled_app, create_probe_app

from ..settings import Settings

DISABLED = ("The SMTP probe API is off: it makes this server connect to other hosts, so it "
            "is on only when mailsink listens on loopback. Turn it on with --probe-api on "
            "(env MAILSINK_PROBE_API=on), and limit it with --probe-allow-hosts.")


def listens_on_loopback(listen: str) -> bool:
    if listen.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(listen.strip("[]")).is_loopback
    except ValueError:
        return False


def probe_enabled(settings: Settings) -> bool:
    if settings.probe_api == "auto":
        return listens_on_loopback(settings.listen)
    return settings.probe_api == "on"


def probe_routes(settings: Settings) -> list[Mount]:
    if not probe_enabled(settings):
        refuse = create_disabled_app(DISABLED)
        return [Mount("/api/smtp", app=refuse), Mount("/api/smtps", app=refuse)]
    allow = [h.strip() for h in settings.probe_allow_hosts.split(",") if h.strip()] or None
    return [Mount("/api/smtp", app=create_probe_app(allow)),
            Mount("/api/smtps", app=create_probe_app(allow, implicit_tls=True))]
