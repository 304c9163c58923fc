"""Routes described once: the same declaration registers the aiohttp handler, validates the
request (path and query parameters, JSON bodies) and becomes the OpenAPI 3 document served at
`/api/openapi.json`, so the document cannot drift from what the server does."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from face_watchlist.web.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]
QUERY: web.RequestKey[dict[str, Any]] = web.RequestKey("query")
BODY: web.RequestKey[Any] = web.RequestKey("body")
MAX_JSON_BYTES = 1 << 20
SQLITE_INT = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    where: Literal["query", "path"] = "query"
    description: str = ""
    default: Any = None


@dataclass(frozen=True)
class Response:
    description: str
    schema: Schema | None = None
    media: str = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: Schema | None = None  # a JSON body, validated before the handler runs
    multipart: Schema | None = None  # documented only: multipart fields are read by the handler
    responses: Mapping[int, Response] = field(default_factory=dict)
    open: bool = False  # reachable without credentials (health only)


class Routes:
    """A group of operations (one module's routes)."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self, method: str, path: str, summary: str, tag: str, **options: Any
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(method, path, handler, summary, tag, **options))
            return handler

        return register


def install(app: web.Application, operations: list[Operation]) -> None:
    for op in operations:
        app.router.add_route(op.method, op.path, _validating(op))


def _validating(op: Operation) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        request[QUERY] = _parse_params(op, request)
        if op.body is not None:
            if request.content_length and request.content_length > MAX_JSON_BYTES:
                raise ApiError(413, "too_large", f"a JSON body may be at most {MAX_JSON_BYTES} bytes")
            try:
                body = json.loads(await request.read() or b"null")
            except ValueError:
                raise ApiError(400, "bad_request", "the body is not valid JSON") from None
            validate(op.body, body, "body")
            request[BODY] = body
        return await op.handler(request)

    return handler


def _parse_params(op: Operation, request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in op.params:
        raw = request.match_info.get(param.name) if param.where == "path" else request.query.get(param.name)
        if raw is None or raw == "":
            values[param.name] = param.default
            continue
        kind = param.schema.get("type")
        try:
            value: Any = int(raw) if kind == "integer" else float(raw) if kind == "number" else raw
        except ValueError:
            raise ApiError(400, "bad_request", f"{param.name}: expected {kind}, got {raw[:40]!r}") from None
        validate(param.schema, value, param.name)
        values[param.name] = value
    return values


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def validate(schema: Schema, value: Any, where: str) -> None:
    """The subset of JSON Schema our documents use; the error names the offending field."""
    _check_type(schema, value, where)
    if "enum" in schema and value not in schema["enum"]:
        raise ApiError(400, "bad_request", f"{where}: must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 1 << 30):
            raise ApiError(400, "bad_request", f"{where}: length must be within the allowed range")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise ApiError(400, "bad_request", f"{where}: has characters that are not allowed")
    if isinstance(value, int | float) and not isinstance(value, bool):
        # what SQLite and datetime can hold: a huge id or NaN is the caller's error, not a crash
        if not math.isfinite(value) or (
            isinstance(value, int) and not SQLITE_INT[0] <= value <= SQLITE_INT[1]
        ):
            raise ApiError(400, "bad_request", f"{where}: number out of range")
        if "minimum" in schema and value < schema["minimum"]:
            raise ApiError(400, "bad_request", f"{where}: must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ApiError(400, "bad_request", f"{where}: must be at most {schema['maximum']}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 1 << 30):
            raise ApiError(400, "bad_request", f"{where}: wrong number of items")
        for number, item in enumerate(value):
            validate(schema.get("items", {}), item, f"{where}[{number}]")
    if isinstance(value, dict):
        _check_object(schema, value, where)


def _check_type(schema: Schema, value: Any, where: str) -> None:
    kinds = schema.get("type")
    if kinds is None:
        return
    kinds = [kinds] if isinstance(kinds, str) else kinds
    bool_as_number = isinstance(value, bool) and "boolean" not in kinds
    if bool_as_number or not any(isinstance(value, _TYPES[k]) for k in kinds):
        raise ApiError(400, "bad_request", f"{where}: expected {' or '.join(kinds)}")


def _check_object(schema: Schema, value: dict[str, Any], where: str) -> None:
    properties = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            raise ApiError(400, "bad_request", f"{where}.{key}: required")
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(properties))
        if extra:
            raise ApiError(400, "bad_request", f"{where}: unknown field(s) {', '.join(extra)}")
    for key, sub in properties.items():
        if key in value:
            validate(sub, value[key], f"{where}.{key}")


# the document ------------------------------------------------------------------------------

ERROR_SCHEMA: Schema = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


def document(operations: list[Operation], version: str, schemas: Mapping[str, Schema]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": op.handler.__name__,
            "parameters": [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.where == "path",
                    "schema": p.schema,
                    **({"description": p.description} if p.description else {}),
                }
                for p in op.params
            ],
            "responses": {
                str(status): {
                    "description": r.description,
                    **({"content": {r.media: {"schema": r.schema or {}}}} if r.media else {}),
                }
                for status, r in op.responses.items()
            },
        }
        if not op.open:
            entry["security"] = [{"bearer": []}, {"ingress": []}]
            entry["responses"].setdefault("401", _error_response("no credentials"))
        entry["responses"].setdefault("default", _error_response("an error"))
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
        if op.multipart is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": op.multipart}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Face Watchlist",
            "version": version,
            "description": 'The service\'s HTTP API. Errors: {"error": code, "message": text}.',
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **schemas},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the `web.token` option"},
                "ingress": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Ingress-Path",
                    "description": "Home Assistant ingress: only from the Supervisor's proxy 172.30.32.2",
                },
            },
        },
    }


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}
