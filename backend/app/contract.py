"""The error half of the OpenAPI document: every status an operation can answer, with its body.

Routes list the statuses their own code produces (`responses(401, 404, ...)`); the statuses every
operation can answer (a bad or too large body, the HA setup's rate limit) are added app-wide in
`app.main`. A status missing here is a contract drift that the fuzz test reports.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from app.schemas import Unready


class ErrorDetail(BaseModel):
    loc: str = Field(description="Where: body.content, query.limit, header.Idempotency-Key, ...")
    msg: str
    type: str


def _error_model(
    name: str, codes: tuple[str, ...], details: Literal["required", "optional", "none"]
) -> type[BaseModel]:
    """An error body: {"error": <one of codes>, "message": <text>[, "details": [...]]}."""
    fields: dict[str, Any] = {"error": (Literal[codes], ...), "message": (str, ...)}
    if details == "required":
        fields["details"] = (list[ErrorDetail], ...)
    elif details == "optional":
        fields["details"] = (list[ErrorDetail] | None, None)
    return create_model(name, **fields)


ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (
        _error_model("BadRequestError", ("malformed_json", "bad_request"), "optional"),
        "The body is not valid JSON (`malformed_json`, with details) or Content-Length is not a "
        "number (`bad_request`).",
    ),
    401: (
        _error_model("UnauthorizedError", ("unauthorized",), "none"),
        "No valid bearer token. Checked before the body is read. Header `WWW-Authenticate`.",
    ),
    404: (
        _error_model("NotFoundError", ("not_found",), "none"),
        "The conversation does not exist.",
    ),
    409: (
        _error_model("ConflictError", ("idempotency_key_reused",), "none"),
        "The Idempotency-Key was already used with a different request.",
    ),
    413: (
        _error_model("PayloadTooLargeError", ("payload_too_large",), "none"),
        "The body is larger than MAX_BODY_BYTES (by Content-Length or by the bytes received).",
    ),
    415: (
        _error_model("UnsupportedMediaTypeError", ("unsupported_media_type",), "none"),
        "A body was sent with a Content-Type other than application/json.",
    ),
    422: (
        _error_model("ValidationError", ("validation_error",), "required"),
        "A parameter, header or body field breaks a rule of this document.",
    ),
    503: (
        _error_model("UnavailableError", ("database_unavailable",), "none"),
        "The database is unreachable; retry after `Retry-After` seconds.",
    ),
}

RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}
}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "The bearer challenge.", "schema": {"type": "string"}}
}
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}

# Answered by Traefik's rate limit in the HA setup (not by the backend): plain text.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many requests from this client (Traefik's rate limit, HA setup).",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: these error statuses with their bodies and headers."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model, description = ERRORS[status]
        entry: dict[str, Any] = {"model": model, "description": description}
        if status == 503:
            entry["headers"] = RETRY_AFTER
        if status == 401:
            entry["headers"] = WWW_AUTHENTICATE
        out[status] = entry
    return out


def every_operation() -> dict[int | str, dict[str, Any]]:
    """What any operation can answer: the body limit middleware runs before routing."""
    return {**responses(400, 413), **RATE_LIMITED}


UNREADY: dict[int | str, dict[str, Any]] = {
    503: {"model": Unready, "description": "Not ready; `reason` says why."}
}
