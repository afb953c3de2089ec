"""The Jinja2 environment for every HTML page, with autoescape always on.

Templates live in the top-level ``templates/`` directory, installed as the
``mailsink_templates`` package; from a source checkout (not installed) they are
read from the directory beside ``sink/``. Header values and filenames from mail
are hostile input: autoescaping is never switched off, and no template marks
mail-derived text ``|safe``.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import importlib.util
import os
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse


def _loader() -> jinja2.BaseLoader:
    if importlib.util.find_spec("mailsink_templates") is not None:
        return jinja2.PackageLoader("mailsink_templates", ".")
    source_tree = os.path.join(os.path.dirname(__file__), "..", "..", "templates")
    return jinja2.FileSystemLoader(os.path.abspath(source_tree))

# Our own pages: no inline scripts or styles, nothing from other origins, not framable.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; frame-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def filesize(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if size < 10 else f"{size:.0f} {unit}"
    return ""


def isotime(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")


def exacttime(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def reltime(timestamp: float, now: float | None = None) -> str:
    """"just now", "5 min ago"...; the page's script keeps it current."""
    seconds = (now if now is not None else dt.datetime.now().timestamp()) - timestamp
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    if seconds < 7 * 86400:
        return f"{round(seconds / 86400)} d ago"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d")


def display_name(address: str) -> str:
    """"Alice <a@example.com>" → "Alice"; a bare address stays as it is."""
    name, addr = email.utils.parseaddr(address)
    return name or addr or address


environment = jinja2.Environment(loader=_loader(), autoescape=True,
                                 undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True)
environment.filters.update(filesize=filesize, isotime=isotime, exacttime=exacttime,
                           reltime=reltime, display_name=display_name)


def base_path(request: Request) -> str:
    """The path the app is mounted at ("" at /, "/mailhog" under a web path prefix)."""
    return request.scope.get("root_path", "").rstrip("/")


def render(request: Request, name: str, status_code: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A page; ``base`` in templates is the mount path every link starts with."""
    html = environment.get_template(name).render(base=base_path(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
