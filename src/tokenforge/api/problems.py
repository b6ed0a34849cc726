"""RFC 9457 problem details for every error the API returns.

Body: ``type``, ``title``, ``status``, ``detail``, ``instance`` and, for bad input,
``errors: [{"field": ..., "message": ...}]`` naming each offending field (dotted path as
the client sent it, e.g. ``"symbol"`` or ``"query.limit"``).

A :class:`~tokenforge.errors.TransientError` from any route (e.g. ``DB_UNAVAILABLE`` while
the database is down) answers ``503`` with ``Retry-After``: the error's ``retry_after_s``
rounded up, at least 1 second, else 1. Other TokenForge errors answer ``422``; only an
exception that is not a TokenForge error answers ``500``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from tokenforge.api.responses import OrjsonResponse
from tokenforge.api.schemas.tokens import CURSOR_PATTERN
from tokenforge.domain.tokens import URL_PATTERN
from tokenforge.errors import Conflict, Forbidden, NotFound, TokenForgeError, Unauthenticated, ValidationFailed

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem_doc(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for a problem+json answer."""
    doc: dict[str, Any] = {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}
    if headers:
        doc["headers"] = headers
    return doc


def problem_response(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> OrjsonResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    return OrjsonResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_of(err: dict) -> str:
    """The field as the client sent it: ``symbol``, ``query.limit``, ``header.idempotency-key``.

    Request bodies are flat objects, so a body error is named by its top-level key; deeper
    parts of pydantic's location are union-member tags (``supply.int``) or, for malformed
    JSON, a byte offset.
    """
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "json_invalid" or not loc:
        return "body"
    if loc[0] == "body":
        return loc[1] if len(loc) > 1 else "body"
    return ".".join(loc[:2])


#: Plain words for patterns too long to show a client (the schema states each pattern).
_PATTERN_MESSAGES = {
    URL_PATTERN: "must be an http(s) URL with a host, without user:pass@, whitespace or control characters",
    CURSOR_PATTERN: "is not a cursor this API returned",
}


def _message_of(err: dict) -> str:
    if err.get("type") == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern")
        if pattern in _PATTERN_MESSAGES:
            return _PATTERN_MESSAGES[pattern]
    return str(err.get("msg", "invalid"))


_STATUS_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "Request timeout",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
}

#: The problem responses every route can return, for the OpenAPI document.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {"model": Problem, "description": "The request body did not arrive in time", "content": {PROBLEM_JSON: {}}},
    413: {
        "model": Problem,
        "description": "The request body is larger than the server takes (64 KiB by default)",
        "content": {PROBLEM_JSON: {}},
    },
    422: {"model": Problem, "description": "Invalid input; `errors` names each field", "content": {PROBLEM_JSON: {}}},
    429: {
        "model": Problem,
        "description": "A rate limit's budget is spent (`detail` names which); try again after `Retry-After`",
        "content": {PROBLEM_JSON: {}},
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}},
            "RateLimit-Limit": {"description": "The budget's size", "schema": {"type": "integer"}},
            "RateLimit-Remaining": {"description": "What is left of it", "schema": {"type": "integer"}},
            "RateLimit-Reset": {"description": "Seconds until it refills", "schema": {"type": "integer"}},
        },
    },
    500: {"model": Problem, "description": "Unexpected server error", "content": {PROBLEM_JSON: {}}},
    503: {
        "model": Problem,
        "description": "Temporarily unavailable (e.g. the database is down); try again after `Retry-After`",
        "content": {PROBLEM_JSON: {}},
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
}


def retry_after_s(exc: BaseException) -> int:
    """Whole seconds for ``Retry-After``: the error's ``retry_after_s`` rounded up, at least 1;
    1 when it gives none."""
    hint = getattr(exc, "retry_after_s", None)
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and math.isfinite(hint):
        return max(1, math.ceil(hint))
    return 1


def _allowed_methods(request: Request) -> list[str]:
    """Every documented method at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        regex, _, _ = compile_path(template)
        if regex.match(request.url.path):
            methods |= {m.upper() for m in item if m in {"get", "post", "put", "patch", "delete"}}
    return sorted(methods)


def problem_json_openapi(schema: dict) -> dict:
    """Document error bodies under ``application/problem+json``, where they are sent."""
    ref = "#/components/schemas/Problem"
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                json_body = content.get("application/json", {}).get("schema", {})
                if json_body.get("$ref") == ref:
                    content.pop("application/json")
                    content[PROBLEM_JSON] = {"schema": {"$ref": ref}}
    return schema


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        by_field: dict[str, list[str]] = {}
        for err in exc.errors():  # one entry per field; a union field collects each branch's message
            messages = by_field.setdefault(_field_of(err), [])
            message = _message_of(err)
            if message not in messages:
                messages.append(message)
        errors = [{"field": f, "message": " or ".join(m)} for f, m in by_field.items()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(request, 422, "invalid-parameter", "Invalid request", detail, errors)

    @app.exception_handler(ValidationFailed)
    async def _domain(request: Request, exc: ValidationFailed) -> OrjsonResponse:
        return problem_response(
            request,
            422,
            "invalid-parameter",
            "Invalid request",
            f"{exc.field}: {exc.detail}",
            [{"field": exc.field, "message": exc.detail}],
        )

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> OrjsonResponse:
        return problem_response(request, 404, "not-found", "Not found", exc.message)

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated) -> OrjsonResponse:
        challenge = 'Bearer realm="tokenforge"'  # RFC 6750: an error code only for a bad credential
        if exc.code != "auth_required":
            challenge += ', error="invalid_token"'
        return problem_response(
            request,
            401,
            exc.code.replace("_", "-"),
            "Unauthorized",
            exc.message,
            headers={"WWW-Authenticate": challenge},
        )

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> OrjsonResponse:
        return problem_response(request, 403, exc.code.replace("_", "-"), "Forbidden", exc.message)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> OrjsonResponse:
        return problem_response(request, 409, exc.code.replace("_", "-"), "Conflict", exc.message)

    @app.exception_handler(TokenForgeError)
    async def _tokenforge(request: Request, exc: TokenForgeError) -> OrjsonResponse:
        if exc.is_transient():
            return problem_response(
                request,
                503,
                exc.code.replace("_", "-"),
                "Temporarily unavailable",
                exc.message,
                headers={"Retry-After": str(retry_after_s(exc))},
            )
        return problem_response(request, 422, exc.code.replace("_", "-"), "Request refused", exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # e.g. a body that is not UTF-8: the same answer as any other unreadable body
            return problem_response(
                request,
                422,
                "invalid-parameter",
                "Invalid request",
                "body: the body is not valid JSON",
                [{"field": "body", "message": "the body is not valid JSON"}],
            )
        headers = exc.headers
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            if allowed:
                headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        title = _STATUS_TITLES.get(exc.status_code, "Error")
        code = title.lower().replace(" ", "-")
        return problem_response(request, exc.status_code, code, title, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> OrjsonResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "internal-error", "Internal error", "an unexpected error occurred")
