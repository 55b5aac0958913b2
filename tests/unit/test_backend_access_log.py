"""The access log's status for a request whose client went away before any answer (Traefik
cutting a pinned attempt, a client timeout): 499, not a made-up 500."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from app.middleware import CLIENT_CLOSED, RequestContextMiddleware


def _run(app, caplog: pytest.LogCaptureFixture) -> dict:
    middleware = RequestContextMiddleware(app, replica_id="r1")
    scope = {"type": "http", "method": "POST", "path": "/api/v1/chat", "headers": []}

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        return None

    # RuntimeError: the escaping error of the second case.
    with caplog.at_level(logging.INFO, logger="app.access"), contextlib.suppress(RuntimeError):
        asyncio.run(middleware(scope, receive, send))
    (record,) = [r for r in caplog.records if r.name == "app.access"]
    return record.__dict__


def test_a_client_that_left_before_the_answer_is_logged_499(caplog) -> None:
    async def gone(scope, receive, send) -> None:
        await receive()  # http.disconnect: nothing to answer

    assert _run(gone, caplog)["status"] == CLIENT_CLOSED == 499


def test_an_error_that_escapes_is_logged_500(caplog) -> None:
    async def broken(scope, receive, send) -> None:
        raise RuntimeError("bug")

    assert _run(broken, caplog)["status"] == 500


def test_an_answer_is_logged_with_its_status(caplog) -> None:
    async def ok(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    assert _run(ok, caplog)["status"] == 201
