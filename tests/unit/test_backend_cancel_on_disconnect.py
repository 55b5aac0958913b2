"""A handler whose client has gone is stopped (app/disconnect.py): the real app, every middleware,
driven through the real uvicorn protocol, with the connection lost as Traefik closes it when an
attempt outlives the pinned bound."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.disconnect import CancelOnDisconnectMiddleware
from app.main import create_app
from app.server import OneSendHttpToolsProtocol
from app.settings import Settings
from tests.unit.test_backend_one_send import TOKEN, RecordingTransport

AUTH = f"Authorization: Bearer {TOKEN}\r\n"


class Handler:
    """Routes added to the real app that say how they ended."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}

    async def slow(self) -> dict[str, bool]:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.ended["slow"] = "cancelled"
            raise
        self.ended["slow"] = "finished"
        return {"ok": True}

    async def echo(self, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        self.ended["echo"] = "finished"
        return body

    async def with_afterwork(self) -> JSONResponse:
        async def afterwork() -> None:
            try:
                await asyncio.sleep(0.2)
            except asyncio.CancelledError:
                self.ended["afterwork"] = "cancelled"
                raise
            self.ended["afterwork"] = "finished"

        return JSONResponse({"ok": True}, background=BackgroundTask(afterwork))


def app_with(handler: Handler) -> Any:
    app = create_app(Settings(api_tokens=TOKEN, replica_id="unit"))
    app.add_api_route("/api/v1/test-slow", handler.slow, methods=["GET"])
    app.add_api_route("/api/v1/test-echo", handler.echo, methods=["POST"])
    app.add_api_route("/api/v1/test-afterwork", handler.with_afterwork, methods=["GET"])
    return app


def connect(app: Any, request: bytes) -> tuple[OneSendHttpToolsProtocol, RecordingTransport]:
    config = Config(app=app, http=OneSendHttpToolsProtocol, lifespan="off", log_config=None)
    config.load()
    protocol = OneSendHttpToolsProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    return protocol, transport


async def until(condition: Any, within_s: float) -> float:
    started = time.monotonic()
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.002)
    return time.monotonic() - started


def watchers() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "disconnect-watch"]


@pytest.mark.anyio
async def test_a_handler_whose_client_left_is_stopped_and_logged_499(capsys) -> None:
    handler = Handler()
    request = f"GET /api/v1/test-slow HTTP/1.1\r\nHost: web\r\n{AUTH}\r\n".encode()
    protocol, transport = connect(app_with(handler), request)
    await asyncio.sleep(0.05)
    assert handler.ended == {}, "the handler runs while its client waits"
    protocol.connection_lost(None)
    took = await until(lambda: "slow" in handler.ended, within_s=1.0)
    await until(lambda: not watchers(), within_s=1.0)
    assert handler.ended == {"slow": "cancelled"}
    assert took < 0.1, f"stopped {took:.3f} s after the client left"
    assert transport.writes == []
    # The app logs JSON lines on stdout (app/logging_setup.py).
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (access,) = [line for line in lines if line.get("logger") == "app.access"]
    assert access["status"] == 499
    assert watchers() == []


@pytest.mark.anyio
async def test_the_request_metrics_count_a_stopped_handler_as_4xx_not_5xx() -> None:
    """The canary judges and the alerts count 5xx: a client that left is not a server error.
    The instrumentator the app uses, on a registry of its own (the app's registers once per
    process)."""
    handler = Handler()
    app = FastAPI()
    app.add_api_route("/slow", handler.slow, methods=["GET"])
    app.add_middleware(CancelOnDisconnectMiddleware)
    registry = CollectorRegistry()
    Instrumentator(registry=registry).instrument(app)
    protocol, _ = connect(app, b"GET /slow HTTP/1.1\r\nHost: web\r\n\r\n")
    await asyncio.sleep(0.05)
    protocol.connection_lost(None)
    await until(lambda: "slow" in handler.ended and not watchers(), within_s=1.0)
    assert handler.ended == {"slow": "cancelled"}

    def counted(status: str) -> float:
        labels = {"handler": "/slow", "method": "GET", "status": status}
        return registry.get_sample_value("http_requests_total", labels) or 0.0

    assert (counted("4xx"), counted("5xx")) == (1.0, 0.0)


@pytest.mark.anyio
async def test_a_client_that_stays_gets_its_answer_and_no_watcher_is_left() -> None:
    handler = Handler()
    body = b'{"text": "hello"}'
    request = (
        f"POST /api/v1/test-echo HTTP/1.1\r\nHost: web\r\n{AUTH}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    protocol, transport = connect(app_with(handler), request)
    await until(lambda: protocol.cycle is not None and protocol.cycle.response_complete, 1.0)
    await asyncio.sleep(0.01)
    assert handler.ended == {"echo": "finished"}
    answer = b"".join(transport.writes)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(body.replace(b" ", b""))
    assert watchers() == []


@pytest.mark.anyio
async def test_work_after_a_complete_answer_is_not_stopped_when_the_client_leaves() -> None:
    handler = Handler()
    request = f"GET /api/v1/test-afterwork HTTP/1.1\r\nHost: web\r\n{AUTH}\r\n".encode()
    protocol, transport = connect(app_with(handler), request)
    await until(lambda: protocol.cycle is not None and protocol.cycle.response_complete, 1.0)
    protocol.connection_lost(None)
    await until(lambda: "afterwork" in handler.ended, within_s=1.0)
    assert handler.ended == {"afterwork": "finished"}
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 200 OK")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
