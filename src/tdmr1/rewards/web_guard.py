"""What no other web page may do to our HTTP servers: a ``Host`` allowlist (no DNS rebinding), an Origin /
``Sec-Fetch-Site`` check (no cross-site requests), bounded JSON bodies, and headers that forbid framing."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

#: Extra host names a server answers to (comma-separated), besides IP literals, localhost and this machine's name.
ALLOWED_HOSTS_ENV = "TDMR1_ALLOWED_HOSTS"

#: Sent with every answer: nothing loads from elsewhere, nothing frames the page, no referrer leaks a token.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}

MAX_JSON_DEPTH = 32


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:80`` -> ``::1``, ``a.b:8`` -> ``a.b``), lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_host_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """``localhost``, this machine's names, ``$TDMR1_ALLOWED_HOSTS`` and ``extra``."""
    names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    names |= {n.strip().lower() for n in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if n.strip()}
    return frozenset(names | {n.lower() for n in extra})


def host_ok(host_header: str | None, allowed: frozenset[str]) -> bool:
    """An IP literal (a rebinding page is never served from one of ours) or an allowed name."""
    if not host_header:
        return False
    name = host_name(host_header)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in allowed or name.endswith(".localhost")


def cross_site_reason(headers: Mapping[str, str], navigation_ok: bool = False) -> str | None:
    """Why a request comes from another web page (an ``Origin`` that is not this server, or a
    ``Sec-Fetch-Site`` other than same-origin / none); None for same-origin pages and non-browser clients.
    ``navigation_ok``: a top-level navigation from elsewhere may open the page itself (it cannot read it)."""
    site = headers.get("sec-fetch-site")
    if navigation_ok and headers.get("sec-fetch-mode", "navigate") == "navigate" and "origin" not in headers:
        return None
    origin = headers.get("origin")
    if origin is not None:
        host = headers.get("host", "")
        if origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
            return f"cross-origin request from {origin[:100]!r} refused"
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"cross-site request ({site[:20]}) refused"
    return None


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises ValueError (never RecursionError) on nesting deeper than ``max_depth``."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    if not _depth_ok(data, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return data


def is_json_content_type(value: str | None) -> bool:
    return (value or "").split(";", 1)[0].strip().lower() == "application/json"


def install_guard(app, allowed_hosts: Iterable[str] = (), navigation_paths: Iterable[str] = ()) -> None:
    """Refuse (403, nothing done) a foreign ``Host`` and cross-site requests before any other middleware or
    endpoint runs, and add ``SECURITY_HEADERS`` to every answer. ``navigation_paths`` (the page) may be
    opened by a top-level navigation from elsewhere."""
    from fastapi.responses import JSONResponse

    allowed, pages = allowed_host_names(allowed_hosts), frozenset(navigation_paths)

    @app.middleware("http")
    async def _guard(request, call_next):
        host = request.headers.get("host")
        if not host_ok(host, allowed):
            name = host_name(host or "")[:100]
            reason = f"Host {name!r} is not allowed (add it to ${ALLOWED_HOSTS_ENV} if it is this machine's name)"
            response = JSONResponse({"error": reason}, status_code=403)
        else:
            navigation = request.method == "GET" and request.url.path in pages
            reason = cross_site_reason(request.headers, navigation_ok=navigation)
            response = JSONResponse({"error": reason}, status_code=403) if reason else await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response
