"""Pure ASGI middlewares: request id + access log + in-flight gauge, and the body size limit."""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import connection_deadline
from app.logging_setup import pick_request_id, request_id_var
from app.metrics import IN_FLIGHT

access_log = logging.getLogger("app.access")
# Probes hit every replica several times a second (Traefik and Docker): keep them out of the
# INFO access log and out of the request metrics (main.py).
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/readyz/routing", "/metrics"})


CLIENT_CLOSED = 499


class RequestContextMiddleware:
    """Takes X-Request-ID from the caller (or makes one), returns it with X-Replica, logs one
    JSON line per request and counts requests in flight."""

    def __init__(self, app: ASGIApp, replica_id: str, db_deadline_s: float | None = None) -> None:
        self.app = app
        self.db_deadline_s = db_deadline_s
        # Every response names the replica that served it (load distribution checks, loadgen).
        self.replica_header = (b"x-replica", replica_id.encode("latin-1", "replace"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = pick_request_id(incoming)
        token = request_id_var.set(request_id)
        if self.db_deadline_s is not None:
            connection_deadline.set(time.monotonic() + self.db_deadline_s)
        # No response started: the client went away first (logged as nginx's 499), unless an
        # error escapes (500).
        status = CLIENT_CLOSED
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append(self.replica_header)
                message = {**message, "headers": headers}
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            if status == CLIENT_CLOSED:
                status = 500
            raise
        finally:
            IN_FLIGHT.dec()
            path = scope.get("path", "")
            level = logging.DEBUG if path in QUIET_PATHS and status < 500 else logging.INFO
            access_log.log(
                level,
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """413 for bodies above `max_bytes`: by Content-Length before reading, and by counting the
    bytes actually received (chunked uploads). The body is read up front (it is small by
    definition) and replayed to the app, so a rejected request never reaches a handler."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _json_error(send, 400, "bad_request", "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _json_error(
            send, 413, "payload_too_large", f"request body exceeds {self.max_bytes} bytes"
        )


async def _json_error(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
