"""gunicorn's uvicorn worker, with every small response leaving the process in one send().

uvicorn writes a response's status line and headers as soon as the app starts the response,
and its body in a second write: two TCP segments. A replica that dies or is cut off the network
between the two leaves Traefik holding headers it has already passed to the client, waiting for
a body that never comes (nothing bounds that wait, and an answer already started cannot be
retried); the client times out. Measured here: one GET of 4,500 in one chaos network-cut run of
about twenty. Holding the header block until the body's first write (the same event-loop step
for every non-streaming response) sends both at once: the response then arrives whole or not at
all, and "not at all" is what Traefik's response-header timeout and retry already handle.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

_STATUS_LINE = b"HTTP/1."
_END_OF_HEADERS = b"\r\n\r\n"


class OneSendTransport:
    """A transport that holds a header block until the next write (or the next loop step)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if self._held:
            data, self._held = self._held + data, b""
        if data.startswith(_STATUS_LINE) and data.endswith(_END_OF_HEADERS):
            # Headers only: the body follows in this step for every non-streaming response; a
            # streaming one gets its headers at the next step, as without this class.
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneSendHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneSendTransport(transport, self.loop))  # type: ignore[arg-type]


class Worker(UvicornWorker):
    """The worker `gunicorn.conf.py` names: uvicorn's, with the one-send protocol."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": OneSendHttpToolsProtocol,
    }
