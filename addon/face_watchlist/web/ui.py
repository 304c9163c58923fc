"""The web UI: one HTML page and its ES modules, all bundled (no CDN: schools' networks and
add-on hosts are often offline). The shell carries no data and is served without credentials so
that a browser outside ingress can show the token form; every `/api/` call is authenticated.

Behind Home Assistant ingress the page lives under `X-Ingress-Path`; it uses only relative URLs,
and the `<base>` element names the prefix so that deep links resolve too.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
INGRESS_PATH = re.compile(r"^/api/hassio_ingress/[A-Za-z0-9_-]{1,200}$")
POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)


async def index(request: web.Request) -> web.Response:
    prefix = request.headers.get("X-Ingress-Path", "")
    base = f"{prefix}/" if INGRESS_PATH.match(prefix) else "/"
    page = (STATIC / "index.html").read_text().replace("{{BASE}}", html.escape(base, quote=True))
    return web.Response(
        text=page,
        content_type="text/html",
        headers={
            "Content-Security-Policy": POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


def install(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static("/ui/", STATIC, append_version=False)
