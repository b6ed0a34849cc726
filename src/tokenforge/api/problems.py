"""RFC 9457 problem details for every error the API returns.

Body: ``type``, ``title``, ``status``, ``detail``, ``instance`` and, for bad input,
``errors: [{"field": ..., "message": ...}]`` naming each offending field (dotted path as
the client sent it, e.g. ``"symbol"`` or ``"query.limit"``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from tokenforge.api.responses import OrjsonResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tokenforge.errors import Conflict, NotFound, TokenForgeError, ValidationFailed

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


def problem_response(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
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


def _loc_to_field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


_STATUS_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
}

#: The problem responses every route can return, for the OpenAPI document.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Invalid input; `errors` names each field", "content": {PROBLEM_JSON: {}}},
    500: {"model": Problem, "description": "Unexpected server error", "content": {PROBLEM_JSON: {}}},
}


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        errors = []
        for err in exc.errors():
            loc = err.get("loc", ())
            field = _loc_to_field(loc)
            if loc and loc[0] in ("query", "path", "header"):
                field = ".".join(str(p) for p in loc)
            errors.append({"field": field, "message": str(err.get("msg", "invalid"))})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(request, 422, "invalid-parameter", "Invalid request", detail, errors)

    @app.exception_handler(ValidationFailed)
    async def _domain(request: Request, exc: ValidationFailed) -> OrjsonResponse:
        return problem_response(
            request, 422, "invalid-parameter", "Invalid request", f"{exc.field}: {exc.detail}",
            [{"field": exc.field, "message": exc.detail}],
        )

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> OrjsonResponse:
        return problem_response(request, 404, "not-found", "Not found", exc.message)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> OrjsonResponse:
        return problem_response(request, 409, "conflict", "Conflict", exc.message)

    @app.exception_handler(TokenForgeError)
    async def _tokenforge(request: Request, exc: TokenForgeError) -> OrjsonResponse:
        if exc.is_transient():
            return problem_response(
                request, 503, exc.code.replace("_", "-"), "Temporarily unavailable", exc.message,
                headers={"Retry-After": "1"},
            )
        return problem_response(request, 422, exc.code.replace("_", "-"), "Request refused", exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        title = _STATUS_TITLES.get(exc.status_code, "Error")
        code = title.lower().replace(" ", "-")
        return problem_response(request, exc.status_code, code, title, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> OrjsonResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "internal-error", "Internal error", "an unexpected error occurred")
