"""The HTML body of a message as a document that can do no harm, and its CSP.

Mail HTML is hostile input. It is served from its own endpoint and shown in an
``<iframe sandbox="allow-popups allow-popups-to-escape-sandbox">``; the response
itself carries ``Content-Security-Policy: sandbox`` (an opaque origin even when
opened directly), ``default-src 'none'`` (no scripts, frames, fonts, remote
styles), ``form-action 'none'``, and images only from ``data:`` and this
message's own parts — remote images only when the user asks. The rewriting here
is for usability, not safety (the CSP is the safety): ``cid:`` references point
at the part download URL, links open in a new tab, and meta refreshes are
dropped so the frame cannot navigate itself to a tracker.
"""
from __future__ import annotations

import re
import urllib.parse
from typing import Callable

_CID = re.compile(r"""\bcid:([^"'\s)>]+)""", re.IGNORECASE)
_LINK_TAG = re.compile(r"<(a|area)(?=[\s/>])", re.IGNORECASE)
_META_REFRESH = re.compile(r"<meta\b[^>]*http-equiv[^>]*>", re.IGNORECASE)
_HEAD_OPEN = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_DOCTYPE_OR_HTML = re.compile(r"^\s*(<!doctype[^>]*>\s*)?(<html\b[^>]*>)?", re.IGNORECASE)
_REMOTE = re.compile(r"""(?:\b(?:src|background|srcset|poster)\s*=\s*["']?\s*|url\(\s*["']?\s*)"""
                     r"""(?:https?:)?//""", re.IGNORECASE)
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")

# Our attributes go right after the tag name: when an attribute is repeated, HTML
# parsers keep the first, so the message cannot override them.
_LINK_ATTRIBUTES = ' target="_blank" rel="noopener noreferrer"'
_HEAD_EXTRA = '<base target="_blank"><meta name="referrer" content="no-referrer">'


def rewrite_html(html: str, part_url: Callable[[str], str | None]) -> str:
    """The message's HTML with ``cid:`` resolved, links opening a new tab."""
    def replace_cid(match: re.Match) -> str:
        url = part_url(urllib.parse.unquote(match.group(1)))
        return url if url else match.group(0)

    html = _CID.sub(replace_cid, html)
    html = _META_REFRESH.sub("", html)
    html = _LINK_TAG.sub(lambda m: "<" + m.group(1) + _LINK_ATTRIBUTES, html)
    head = _HEAD_OPEN.search(html)
    if head:
        return html[:head.end()] + _HEAD_EXTRA + html[head.end():]
    start = _DOCTYPE_OR_HTML.match(html)
    cut = start.end() if start else 0
    return html[:cut] + _HEAD_EXTRA + html[cut:]


def count_remote_images(html: str | None) -> int:
    """How many remote image-like references the HTML has (for the "load" prompt)."""
    return len(_REMOTE.findall(html)) if html else 0


def content_security_policy(origin: str | None, parts_path: str, remote_images: bool) -> str:
    """The CSP for a message's HTML document.

    ``origin`` is ``scheme://host[:port]`` as the browser addressed us (from the
    Host header); ``parts_path`` the URL path prefix of this message's parts.
    """
    images = ["data:", "cid:"]
    if origin and _HOST.match(origin.split("://", 1)[-1]):
        images.append(origin + parts_path)
    if remote_images:
        images += ["https:", "http:"]
    return ("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
            f"img-src {' '.join(images)}; style-src 'unsafe-inline'; "
            "form-action 'none'; frame-ancestors 'self'; base-uri 'none'")
