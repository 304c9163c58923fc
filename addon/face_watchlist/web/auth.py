"""Who is asking: Home Assistant's ingress proxy (with the HA user) or a bearer token.

Ingress requests come only from the Supervisor's proxy address and carry the HA user in headers;
anything else needs the configured token, compared in constant time. Health is the one open API
route; the UI's page and static files carry no data and are open too.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

INGRESS_PROXY = "172.30.32.2"
OPEN_PATHS = frozenset({"/api/health", "/"})
OPEN_PREFIXES = ("/ui/",)  # the UI's static files: no data, needed to show the token form


@dataclass(frozen=True)
class Identity:
    """The actor recorded in the audit log: `ha:<user>` through ingress, `token` otherwise."""

    actor: str


IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")  # set on every authenticated request


def identify(remote: str | None, headers: dict[str, str], token: str | None) -> Identity | None:
    """Pure: the identity a request proves, or None."""
    if remote == INGRESS_PROXY and "X-Ingress-Path" in headers:
        user = headers.get("X-Remote-User-Name") or headers.get("X-Remote-User-Id") or "unknown"
        return Identity(f"ha:{user.strip()[:150] or 'unknown'}")
    auth = headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
        return Identity("token")
    return None


def middleware(token: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES):
            return await handler(request)
        who = identify(request.remote, dict(request.headers), token)
        if who is None:
            return web.json_response(
                {"error": "unauthorized", "message": "a bearer token or Home Assistant ingress is required"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        request[IDENTITY] = who
        return await handler(request)

    return check
