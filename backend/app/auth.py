"""Bearer-token auth for /api/v1/* (except whoami). Tokens: API_TOKENS / API_TOKENS_FILE."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.idempotency import principal_id

_bearer = HTTPBearer(auto_error=False)


def _unauthorized(message: str, error: str | None = None) -> HTTPException:
    challenge = 'Bearer realm="compose-ha"'
    if error:
        challenge += f', error="{error}"'
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": challenge},
    )


async def require_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> str:
    """The caller's principal id (a hash of its token). No tokens configured: nobody gets in."""
    if credentials is None:
        raise _unauthorized("missing bearer token")
    presented = credentials.credentials.encode()
    # Compare against every token in constant time so timing reveals nothing.
    matched = False
    for token in request.app.state.settings.tokens:
        matched |= hmac.compare_digest(presented, token.encode())
    if not matched:
        raise _unauthorized("invalid bearer token", "invalid_token")
    return principal_id(credentials.credentials)
