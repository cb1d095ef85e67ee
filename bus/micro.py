"""Typed endpoints on the NATS services API (`nats.micro`).

Handlers take and return schema instances; decode failures and refusals leave as typed
service errors (code + one-line description), never as a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from bus import codec
from bus.calls import Call
from bus.connection import Bus
from bus.errors import AdminError, DecodeError, ErrorCode
from bus.schemas import Message

Q = TypeVar("Q", bound=Message)
A = TypeVar("A", bound=Message)

log = logging.getLogger("bus.micro")


@dataclass(frozen=True)
class Endpoint(Generic[Q, A]):
    """One request/reply endpoint served: what it is (`bus.calls`) and its handler."""

    call: Call[Q, A]
    handler: Callable[[Q], Awaitable[A]]


def _wrap(bus: Bus, endpoint: Endpoint[Any, Any]) -> Callable[[Request], Awaitable[None]]:
    name = endpoint.call.name

    def count(code: ErrorCode) -> None:
        bus.metrics.admin_requests.labels(name, code.value).inc()

    async def handle(req: Request) -> None:
        headers = codec.headers_of(req.headers)
        try:
            query = codec.decode(req.data, headers, endpoint.call.request, name)
        except DecodeError as exc:
            await req.respond_error(ErrorCode.BAD_REQUEST, f"bad request: {exc}")
            count(ErrorCode.BAD_REQUEST)
            # Kept for the operator too: a client sending junk is worth knowing about.
            await bus.dead_letter(req.subject, req.data, headers, f"bad request: {exc}")
            return
        try:
            reply = await endpoint.handler(query)
        except AdminError as exc:
            await req.respond_error(exc.code, exc.message)
            count(exc.code)
            return
        except Exception as exc:
            log.exception("endpoint %s failed", name)
            await req.respond_error(
                ErrorCode.INTERNAL, f"{name} failed: {type(exc).__name__}; see the service log"
            )
            count(ErrorCode.INTERNAL)
            return
        data, reply_headers = codec.encode(reply)
        await req.respond(data, headers=reply_headers)
        count(ErrorCode.OK)

    return handle


async def serve(
    bus: Bus,
    name: str,
    version: str,
    group: str,
    endpoints: Sequence[Endpoint[Any, Any]],
    description: str = "",
) -> Service:
    """Register `endpoints` under subject prefix `group`, discoverable through $SRV."""
    service = await add_service(
        bus.nc, name=name, version=version, description=description or name
    )
    grp = service.add_group(name=group)
    for endpoint in endpoints:
        await grp.add_endpoint(name=endpoint.call.name, handler=_wrap(bus, endpoint))
    return service
