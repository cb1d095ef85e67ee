"""A TCP proxy that, once a request matching a pattern has passed, swallows the answer: the
server did the work, the client never hears of it. For killing a client at exactly that
moment (between a cloud's create and the client's ack)."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """A proxy on 127.0.0.1:<port> (a free one) to 127.0.0.1:`target_port`; subclasses say
    how each connection is served (`_serve`) and add their tasks to `_tasks`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free port (`port`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class HoldProxy(TcpProxy):
    """Forward 127.0.0.1:<port> to `target`; after a request containing every byte string of
    `trigger` has been forwarded, answers on that connection are held back (`held` is set)."""

    def __init__(self, target_port: int, trigger: tuple[bytes, ...]) -> None:
        super().__init__(target_port)
        self.trigger = trigger
        self.held = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        tripped = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if all(t in data for t in self.trigger):
                    tripped.set()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if tripped.is_set():
                    self.held.set()
                    continue  # the answer is swallowed
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.gather(*tasks)
        for w in (writer, up_writer):
            w.close()
