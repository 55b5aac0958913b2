"""Every error is JSON: {"error": <code>, "message": <text>} (+ "details" for validation)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from app.db import DatabaseUnavailable, caused_by_database_outage
from app.idempotency import IdempotencyConflict

log = logging.getLogger("app.errors")


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


def _loc(parts: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(p) for p in parts)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the methods of the first route that matched the path; a path
        # served by two routes (GET and POST .../messages) needs all of them.
        allowed = allowed_methods(request.app.openapi(), request.url.path)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def allowed_methods(document: dict[str, Any], path: str) -> list[str]:
    """The methods the OpenAPI document lists for the path template `path` matches."""
    methods: set[str] = set()
    for template, operations in document.get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods.update(m.upper() for m in operations)
    return sorted(methods)


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0")
    return "transfer-encoding" in request.headers or (length.isdigit() and int(length) > 0)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    # FastAPI hands a body of another media type to validation as bytes ("not an object"):
    # the truth is that it was not JSON at all.
    body_errors = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors)
    if body_errors and _has_body(request) and not is_json(request.headers.get("content-type")):
        return error_response(
            415, "unsupported_media_type", "send the request body as application/json"
        )
    details = [
        {"loc": _loc(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            400, "malformed_json", "request body is not valid JSON", details=details
        )
    first = details[0] if details else {"loc": "", "msg": "invalid request"}
    return error_response(
        422, "validation_error", f"{first['loc']}: {first['msg']}".lstrip(": "), details=details
    )


async def _db_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    log.warning("database unavailable", extra={"error": str(exc)})
    retry_after = str(request.app.state.settings.retry_after_seconds)
    return error_response(
        503,
        "database_unavailable",
        "database unavailable, retry later",
        headers={"Retry-After": retry_after},
    )


async def _idempotency_conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
    return error_response(
        409, "idempotency_key_reused", "Idempotency-Key was already used with a different request"
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    if caused_by_database_outage(exc):
        log.warning("database outage reached the catch-all handler", exc_info=exc)
        return await _db_unavailable(request, DatabaseUnavailable(str(exc)))
    log.exception("unhandled error")
    return error_response(500, "internal_error", "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DatabaseUnavailable, _db_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(IdempotencyConflict, _idempotency_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled)
