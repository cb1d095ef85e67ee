"""An HTTP fault injector in front of a real API (nova-api): requests that match a rule are
answered with an error status, or never answered, a given number of times; everything else
is forwarded untouched. Cloud faults at the wire, with the real cloud behind them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from tests.holdproxy import TcpProxy


@dataclass
class Fault:
    """Requests whose first line starts with `method` and contains `path` fail `times` times:
    answered with `status` (and a JSON body as Nova writes it), or with nothing when `hang`."""

    method: str
    path: str
    times: int
    status: int = 503
    hang: bool = False
    hits: int = 0

    def matches(self, head: bytes) -> bool:
        line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        return line.startswith(f"{self.method} ") and self.path in line


class FaultProxy(TcpProxy):
    """Forward 127.0.0.1:<port> to 127.0.0.1:`target_port`, applying `faults` in order."""

    def __init__(self, target_port: int, faults: list[Fault]) -> None:
        super().__init__(target_port)
        self.faults = faults

    def _fault_for(self, head: bytes) -> Fault | None:
        for fault in self.faults:
            if fault.hits < fault.times and fault.matches(head):
                fault.hits += 1
                return fault
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        hanging = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                fault = self._fault_for(data)
                if fault is None:
                    up_writer.write(data)
                    await up_writer.drain()
                    continue
                if fault.hang:
                    hanging.set()
                    await asyncio.Event().wait()  # the client times out; we say nothing
                body = json.dumps({"computeFault": {
                    "code": fault.status,
                    "message": f"injected fault: {fault.method} {fault.path}"}}).encode()
                writer.write(
                    f"HTTP/1.1 {fault.status} Injected\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                await writer.drain()
                return

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if hanging.is_set():
                # Nova may close its side meanwhile (idle): the client's stays open, unanswered.
                await asyncio.Event().wait()
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.close()
