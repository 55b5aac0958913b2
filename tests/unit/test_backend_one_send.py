"""Each small response leaves the backend in one write (app/server.py): the real uvicorn
HTTP protocol, driven with the bytes of a request, writing into a transport that records."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.main import create_app
from app.server import OneSendHttpToolsProtocol
from app.settings import Settings

TOKEN = "unit-test-token-0123456789"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed_after: int | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:
        assert self.closed_after is None, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed_after = len(self.writes)

    def is_closing(self) -> bool:
        return self.closed_after is not None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def json_answer(request: Any) -> JSONResponse:
    return JSONResponse({"replica": "r1", "ok": True})


async def streamed(request: Any) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        await asyncio.sleep(0.01)
        yield b"second"

    return StreamingResponse(chunks(), media_type="text/plain")


APP = Starlette(routes=[Route("/json", json_answer), Route("/stream", streamed)])


async def serve(
    protocol_class: type[HttpToolsProtocol], request: bytes, app: Any = APP
) -> RecordingTransport:
    config = Config(app=app, http=protocol_class, lifespan="off", log_config=None)
    config.load()
    loop = asyncio.get_running_loop()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    async with asyncio.timeout(2):
        while protocol.cycle is None or not protocol.cycle.response_complete:
            await asyncio.sleep(0.001)
    await asyncio.sleep(0)  # one loop step: a header block still held goes out in it
    return transport


GET_JSON = b"GET /json HTTP/1.1\r\nHost: web\r\n\r\n"


@pytest.mark.anyio
async def test_a_json_answer_leaves_in_one_write() -> None:
    plain = await serve(HttpToolsProtocol, GET_JSON)
    assert len(plain.writes) == 2, "uvicorn alone writes headers and body apart"
    one = await serve(OneSendHttpToolsProtocol, GET_JSON)
    assert len(one.writes) == 1, one.writes
    assert one.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert one.writes[0] == b"".join(plain.writes)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "token", "status"),
    [("/api/v1/whoami", TOKEN, b"200"), (f"/api/v1/conversations/{uuid.uuid4()}", "no", b"401")],
)
async def test_the_api_through_all_its_middleware_answers_in_one_write(
    path: str, token: str, status: bytes
) -> None:
    app = create_app(Settings(api_tokens=TOKEN, replica_id="unit"))
    request = f"GET {path} HTTP/1.1\r\nHost: web\r\nAuthorization: Bearer {token}\r\n\r\n"
    transport = await serve(OneSendHttpToolsProtocol, request.encode(), app)
    assert len(transport.writes) == 1, transport.writes
    assert transport.writes[0].startswith(b"HTTP/1.1 " + status)


@pytest.mark.anyio
async def test_a_closing_answer_is_written_whole_before_the_close() -> None:
    request = b"GET /json HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n"
    transport = await serve(OneSendHttpToolsProtocol, request)
    assert transport.closed_after == 1 and len(transport.writes) == 1
    assert transport.writes[0].endswith(b'{"replica":"r1","ok":true}')


@pytest.mark.anyio
async def test_a_streamed_answer_still_arrives_in_order() -> None:
    transport = await serve(OneSendHttpToolsProtocol, b"GET /stream HTTP/1.1\r\nHost: w\r\n\r\n")
    data = b"".join(transport.writes)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
    assert body == b"6\r\nfirst,\r\n6\r\nsecond\r\n0\r\n\r\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
