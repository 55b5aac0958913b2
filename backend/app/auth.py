"""Bearer-token auth for /api/v1/* (except whoami). Tokens: API_TOKENS / API_TOKENS_FILE.

Authentication comes before the body: `AuthenticateFirst` answers 401 for a protected route
before anything reads or parses the request body, so a caller without a valid token learns
nothing about the body rules (a wrong token with malformed JSON is a 401, not a 400) and makes
the server buffer nothing. Which operations are protected is read from the OpenAPI document:
those whose route depends on `require_principal`, which declares the bearer scheme there.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response
from app.idempotency import principal_id

# auto_error=False: the 401 and its body are ours; the scheme still lands in the OpenAPI document.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="A token of API_TOKENS")


class Unauthorized(Exception):
    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error

    @property
    def challenge(self) -> str:
        value = 'Bearer realm="compose-ha"'
        return f'{value}, error="{self.error}"' if self.error else value


def authenticate(authorization: str | None, tokens: Sequence[str]) -> str:
    """The caller's principal id (a hash of its token) from an Authorization header value.
    No tokens configured: nobody gets in (pure logic)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise Unauthorized("missing bearer token")
    presented = credentials.encode()
    # Compare against every token in constant time so timing reveals nothing.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token.encode())
    if not matched:
        raise Unauthorized("invalid bearer token", "invalid_token")
    return principal_id(credentials)


async def require_principal(
    request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> str:
    """Route dependency: the principal, or 401. Through `_bearer` it marks the operation as
    needing the token in the OpenAPI document, which `AuthenticateFirst` reads."""
    try:
        return authenticate(request.headers.get("authorization"), request.app.state.settings.tokens)
    except Unauthorized as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, exc.message, {"WWW-Authenticate": exc.challenge}
        ) from exc


class AuthenticateFirst:
    """ASGI middleware: 401 for a protected operation before the body is read. Protected is
    what the OpenAPI document says needs the bearer token (the routes that depend on
    `require_principal`), so the contract and this check cannot disagree."""

    def __init__(
        self, app: ASGIApp, openapi: Callable[[], dict[str, Any]], tokens: Sequence[str]
    ) -> None:
        self.app = app
        self.openapi = openapi  # called on the first request, once every route is registered
        self.tokens = tokens
        self._protected: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._is_protected(scope["method"], scope["path"]):
            try:
                authenticate(_header(scope, b"authorization"), self.tokens)
            except Unauthorized as exc:
                headers = {"WWW-Authenticate": exc.challenge}
                if _header(scope, b"content-length") or _header(scope, b"transfer-encoding"):
                    # The body stays unread: the connection cannot carry another request.
                    headers["Connection"] = "close"
                response = error_response(401, "unauthorized", exc.message, headers=headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _is_protected(self, method: str, path: str) -> bool:
        if self._protected is None:
            self._protected = protected_operations(self.openapi())
        return any(method in methods and regex.match(path) for regex, methods in self._protected)


def protected_operations(document: dict[str, Any]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path regex, methods) of every operation whose OpenAPI entry requires security."""
    protected = []
    for path, operations in document.get("paths", {}).items():
        methods = frozenset(m.upper() for m, op in operations.items() if op.get("security"))
        if methods:
            protected.append((compile_path(path)[0], methods))
    return protected


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
