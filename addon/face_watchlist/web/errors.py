"""One error body for every failure: `{"error": "<code>", "message": "<human text>"}`.

Handlers raise `ApiError`; the middleware turns it, aiohttp's own HTTP errors (unknown route,
wrong method, body too large) and unexpected exceptions into that body, so a client never has to
parse HTML or a traceback.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

LOG = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what}")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = _CODES.get(err.status, "error")
        text = err.text if err.text and not err.text.startswith(f"{err.status}:") else err.reason
        keep = {k: v for k, v in err.headers.items() if k in ("Allow", "WWW-Authenticate")}
        return error_response(err.status, code, text or err.reason, headers=keep)
    except HttpProcessingError as err:  # a malformed body part met while a handler reads it
        status = err.code if 400 <= err.code < 500 else 400
        return error_response(
            status, _CODES.get(status, "bad_request"), f"malformed request: {err.message}"[:300]
        )
    except sqlite3.OperationalError as err:
        problem = str(err)
        if "locked" in problem or "busy" in problem:  # another process held it past the busy timeout
            message = "the database is locked by another process; try again"
            return error_response(503, "unavailable", message, headers={"Retry-After": "5"})
        if "full" in problem:
            return error_response(507, "insufficient_storage", "the disk holding the database is full")
        LOG.exception("error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the service log")
    except Exception:  # a bug in one route must not take the service down or leak a traceback
        LOG.exception("error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the service log")
