"""What every `cs` command shares: the consoles, the common options, output formats, and
the one way to talk to the bus (every expected failure one line and exit 1)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

import siteconfig
from bus.connection import Bus
from bus.errors import AdminError, BusUnavailable, DecodeError, ErrorCode
from bus.link import redacted

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

NatsOption = Annotated[
    str | None,
    typer.Option("--nats", help="NATS URL [default: $CS_NATS_URL or nats://127.0.0.1:4222]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
OutputOption = Annotated[str, typer.Option(
    "--output", "-o", help="table (fits the terminal: secondary columns left out), wide "
    "(every column) or json.")]
OUTPUTS = ("table", "wide", "json")


def output_format(output: str, as_json: bool) -> str:
    """The output format asked for (`--json` is `-o json`); a wrong one is an error."""
    if output not in OUTPUTS:
        raise fail(f"-o {output!r}: use one of {', '.join(OUTPUTS)}")
    return "json" if as_json else output


def width(output: str) -> int | None:
    """How wide tables may be: the terminal's width, or None for every column."""
    return None if output == "wide" else out.size.width


WIDE_CHARS = 1000
"""Line length `-o wide` prints at, whatever the terminal: every column whole (as kubectl's
`-o wide` does), the terminal wraps the long lines."""


def show(renderable: Any, output: str) -> None:
    """Print tables as `output` asks: fitted to the terminal, or every column whole."""
    if output == "wide":
        Console(width=WIDE_CHARS, force_terminal=out.is_terminal or None).print(renderable)
    else:
        out.print(renderable)


def nats_url(nats: str | None) -> str:
    """The NATS URL to use: --nats, else CS_NATS_URL, else the default."""
    return nats or os.environ.get("CS_NATS_URL") or siteconfig.DEFAULT_NATS_URL


def fail(message: str) -> typer.Exit:
    """Say `message` as one error line; raise what it returns (exit 1)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def with_bus(nats: str | None, work: Callable[[Bus], Awaitable[T]]) -> T:
    """Connect, run `work`, close; every expected failure becomes one line and exit 1."""
    url = nats_url(nats)

    root = logging.getLogger()
    if not root.handlers:
        # The CLI says what went wrong in its own one line; the bus's log lines (meant for
        # services) would otherwise reach stderr through logging's last-resort handler.
        root.addHandler(logging.NullHandler())

    async def run() -> T:
        bus = await Bus.connect(url, "cs-cli", wait_s=2.0,
                                ca_file=os.environ.get("CS_NATS_CA_FILE", ""))
        try:
            return await work(bus)
        finally:
            await bus.close()

    try:
        return asyncio.run(run())
    except BusUnavailable as exc:
        if not str(exc).startswith("cannot reach NATS"):
            raise fail(str(exc)) from None  # credentials, CA file, TLS: it says what
        raise fail(f"cannot reach NATS at {redacted(url)}; start the system with `make run` "
                    "(or `cs up --config FILE`), or point --nats / CS_NATS_URL at it") from None
    except AdminError as exc:
        if exc.code == ErrorCode.NO_RESPONDERS:
            raise fail(f"{exc.message}; start cs-admin (`cs up` runs every service)") from None
        raise fail(exc.message) from None
    except DecodeError as exc:
        raise fail(f"unreadable reply ({exc}); are cs and the services the same version?"
                    ) from None


def print_json(doc: Any) -> None:
    """`doc` as indented JSON on stdout."""
    print(json.dumps(doc, indent=2, sort_keys=True))
