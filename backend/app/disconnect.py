"""Stops a request's handler as soon as its client has gone.

The client here is Traefik. When an attempt gets no answer within the pinned bound, Traefik closes
the connection and retries the request on another replica; without this the handler that lost
its client ran on (the assistant's latency, its statements, its commit) for an answer nobody
reads. On a saturated host that wasted work is the feedback that kept an overload going after
its cause was over (issue 13: failures grew for 15 s after a 4 s CPU hog ended). Cancelled at
its next await, the handler gives its database connection back (app/db.py) and a write it had
not committed is rolled back: the client never had an acknowledgement, and the retry carries the
same Idempotency-Key.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What the logs and the request metrics record for a request whose client left first (nginx's
# code). Sent to the outer middlewares only: the server drops anything sent after a disconnect.
CLIENT_CLOSED = 499


class CancelOnDisconnectMiddleware:
    """Innermost: the body must arrive in one message (BodySizeLimitMiddleware buffers it), so
    that the only thing left to receive is the disconnect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = await receive()
        if request["type"] == "http.disconnect":
            await record_client_closed(send)
            return
        if request.get("more_body", False):
            # A streamed body: reading on would take it from the handler. Not watched.
            await self.app(scope, replay_then(request, receive), send)
            return
        await _run_watched(self.app, scope, request, receive, send)


async def _run_watched(
    app: ASGIApp, scope: Scope, request: Message, receive: Receive, send: Send
) -> None:
    handler = asyncio.current_task()
    assert handler is not None
    gone = asyncio.Event()
    started = completed = cancelled = False
    delivered = False

    async def app_receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return request
        # Only the watcher reads the server's channel: a handler that listens for the
        # disconnect (a streaming response) hears it from the watcher.
        await gone.wait()
        return {"type": "http.disconnect"}

    async def app_send(message: Message) -> None:
        nonlocal started, completed
        if message["type"] == "http.response.start":
            started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            completed = True
        await send(message)

    async def watch() -> None:
        nonlocal cancelled
        # After a complete body the server answers receive() only when the connection is
        # lost or the response is complete; both read as http.disconnect.
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()
        if not completed:
            cancelled = True
            handler.cancel()

    watcher = asyncio.create_task(watch(), name="disconnect-watch")
    try:
        await app(scope, app_receive, app_send)
    except asyncio.CancelledError:
        if not cancelled or handler.uncancel() > 0:
            raise  # cancelled by someone else too (the server shutting down)
        if not started:
            await record_client_closed(send)
    finally:
        watcher.cancel()


def replay_then(first: Message, receive: Receive) -> Receive:
    """A receive that gives `first` (a message already read), then the server's own."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return replay


async def record_client_closed(send: Send) -> None:
    """Tells the outer middlewares (access log, request metrics) that the client left first."""
    await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
    await send({"type": "http.response.body", "body": b""})
