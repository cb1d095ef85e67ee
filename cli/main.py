"""`cs`: the operator's command line. It speaks only NATS (through `bus`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.live import Live
from rich.markup import escape

import siteconfig
from bus import calls, codec, subjects
from bus.client import AdminClient, discover
from bus.connection import Bus
from bus.errors import AdminError, ConfigError, DecodeError, ErrorCode
from bus.schemas import HistoryRequest, StatusReply
from cli.common import (
    JsonOption,
    NatsOption,
    OutputOption,
    fail,
    out,
    output_format,
    print_json,
    show,
    width,
    with_bus,
)
from cli.config_commands import config_app
from cli.vm_commands import vm_app
from services.admin import views

T = TypeVar("T")

app = typer.Typer(name="cs", help="Operate cloudscheduler.", no_args_is_help=True)
cloud_app = typer.Typer(help="List, show, enable and disable clouds.", no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")
app.add_typer(vm_app, name="vm")
app.add_typer(config_app, name="config")

@app.command()
def status(
    nats: NatsOption = None, as_json: JsonOption = False, output: OutputOption = "table",
    watch: Annotated[bool, typer.Option(help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    since: Annotated[str, typer.Option(
        help="Instead: how demand and VMs moved over this last while (90s, 15m, 1h, up to "
        "24h), one row a step.")] = "",
    rows: Annotated[int, typer.Option(help="Most rows of --since.")] = 20,
    every_vm: Annotated[bool, typer.Option(
        "--all", help="Every VM, not only those that need attention (--json has them all).")
    ] = False,
) -> None:
    """Clouds with their VMs by state, the VMs that need attention, demand, and the
    planner's reasons."""
    output = output_format(output, as_json)
    if watch and output == "json":
        raise fail("--watch shows tables; use --json without it (or in a loop)")
    if since:
        if watch:
            raise fail("--since shows the history once; use --watch without it")
        _history(nats, since, rows, output)
        return
    def read(client: AdminClient) -> Awaitable[StatusReply]:
        return client.full_status() if every_vm or output == "json" else client.status()

    if not watch:
        reply = with_bus(nats, lambda bus: read(AdminClient(bus)))
        if output == "json":
            print_json(views.status_json(reply))
        else:
            show(views.status_tables(reply, width=width(output)), output)
        return

    async def refresh(bus: Bus) -> None:
        client = AdminClient(bus)
        # Ctrl-C ends the watch between two refreshes: raised in the middle of a print, it
        # cut the last status short (half a table, half a UTF-8 character, seen in a test).
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)

        async def stopped() -> bool:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            return stop.is_set()

        if not out.is_terminal:
            # Piped or logged: one dated status after another, not a redrawn screen.
            while True:
                out.rule(time.strftime("%Y-%m-%d %H:%M:%S"))
                out.print(views.status_tables(await read(client), width=width(output)))
                if await stopped():
                    return
        with Live(views.status_tables(await read(client), width=width(output)),
                  console=out, auto_refresh=False, screen=False) as live:
            while not await stopped():
                live.update(views.status_tables(await read(client), width=width(output)),
                            refresh=True)

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the watch began
        with_bus(nats, refresh)


def _history(nats: str | None, since: str, rows: int, output: str) -> None:
    """`cs status --since`: the history as a table (or JSON)."""
    from services.admin import charts

    try:
        since_s = charts.parse_duration(since)
    except ConfigError as exc:
        raise fail(f"--since: {exc}") from None
    reply = with_bus(nats, lambda bus: AdminClient(bus).call(
        calls.HISTORY, HistoryRequest(since_s=since_s, max_points=rows)))
    if output == "json":
        print_json(reply.model_dump(mode="json"))
        return
    step = f"{reply.step_s:g}s" if reply.step_s < 120 else f"{reply.step_s / 60:g}min"
    title = f"The last {since}: {len(reply.points)} step(s) of {step}"
    if not reply.points:
        title += " (no history yet: a point is taken every " \
            f"{reply.interval_s:g}s by cs-admin)"
    table = views.Table(title=title, title_justify="left", box=box.SIMPLE_HEAD,
                        show_edge=False, collapse_padding=True)
    for header in charts.HISTORY_HEADERS:
        table.add_column(header, justify="left" if header == "time" else "right")
    for row in charts.history_rows(reply.points):
        table.add_row(*row)
    show(table, output)


@cloud_app.command("list")
def cloud_list(nats: NatsOption = None, as_json: JsonOption = False,
               output: OutputOption = "table") -> None:
    """Every cloud with its provider, enabled flag and VM counts."""
    output = output_format(output, as_json)
    reply = with_bus(nats, lambda bus: AdminClient(bus).status())
    if output == "json":
        print_json([c.model_dump(mode="json") for c in reply.clouds])
    else:
        show(views.clouds_table(reply, time.time(), width(output)), output)


def _toggle(name: str, enabled: bool, nats: str | None) -> None:
    try:
        subjects.check_token(name, "cloud")
    except ConfigError as exc:
        raise fail(str(exc)) from None
    reply = with_bus(nats, lambda bus: AdminClient(bus).set_enabled(name, enabled))
    word = "enabled" if reply.enabled else "disabled"
    note = "" if reply.changed else " (it already was)"
    out.print(escape(f"cloud {reply.name} {word}{note}"))


@cloud_app.command("enable")
def cloud_enable(name: str, nats: NatsOption = None) -> None:
    """Let the planner boot VMs on cloud NAME from its next cycle (kept across restarts)."""
    _toggle(name, True, nats)


@cloud_app.command("disable")
def cloud_disable(name: str, nats: NatsOption = None) -> None:
    """Stop new boots on cloud NAME; its running VMs are left alone."""
    _toggle(name, False, nats)


@cloud_app.command("show")
def cloud_show(name: str, nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """One cloud's record and the instances its provisioner lists on it right now."""

    async def work(bus: Bus) -> tuple[Any, Any]:
        client = AdminClient(bus)
        reply = await client.status()
        match = [c for c in reply.clouds if c.name == name]
        if not match:
            known = ", ".join(c.name for c in reply.clouds) or "none"
            raise AdminError(ErrorCode.NOT_FOUND,
                             f"unknown cloud {name!r}; known clouds: {known}")
        return match[0], await client.instances(name)

    cloud, listing = with_bus(nats, work)
    if as_json:
        print_json({"cloud": cloud.model_dump(mode="json"),
                     "instances": [i.model_dump(mode="json") for i in listing.instances]})
    else:
        out.print(escape(f"{cloud.name}: provider {cloud.provider}, "
                         f"{'enabled' if cloud.enabled else 'disabled'}, "
                         f"max_vms {cloud.max_vms}"))
        out.print(views.instances_table(listing))


@app.command()
def services(nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """Live service instances, found through the NATS services API ($SRV)."""
    found = with_bus(nats, lambda bus: discover(bus))
    if as_json:
        print_json([{"name": s.name, "id": s.id, "version": s.version,
                      "endpoints": list(s.endpoints)} for s in found])
        return
    if not found:
        raise fail("no service answered; start them with `make run` (or `cs up`)")
    out.print(views.services_table(found))


@app.command()
def trace(
    nats: NatsOption = None,
    subject: Annotated[str, typer.Option(help="Subject filter.")] = subjects.everything(),
    count: Annotated[int, typer.Option(help="Stop after this many messages (0: never).")] = 0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per message: subject, headers, decoded body.")] = False,
    trace_id: Annotated[str, typer.Option(
        "--trace", help="Only messages of this trace id (one demand change and all it "
        "caused); implies --changes.")] = "",
    changes: Annotated[bool, typer.Option(
        "--changes", help="Drop snapshots and reports equal to the last on their subject.")
    ] = False,
) -> None:
    """Follow the bus: one line per message (time, subject, type, trace id, what it says).
    Ctrl-C stops."""
    from cli import tracing

    keep = tracing.Changes().keep if changes or trace_id else None

    async def work(bus: Bus) -> None:
        seen = 0
        async for msg in bus.tail(subject):
            if trace_id and msg.headers.get(codec.HEADER_TRACE) != trace_id:
                continue
            value = tracing.decoded(msg)
            if keep is not None and not keep(msg, value):
                continue
            line = (tracing.json_line(msg, value) if as_json
                    else tracing.text_line(msg, time.time(), value))
            print(line, flush=True)
            seen += 1
            if count and seen >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):
        with_bus(nats, work)


@app.command()
def decode(
    type_name: Annotated[str, typer.Option(
        "--type", help="The schema (a Cs-Type value, e.g. VmEvent); without it the body is "
        "shown as plain msgpack.")] = "",
    header: Annotated[list[str] | None, typer.Option(
        "--header", "-H", help="A header of the message, 'Name: value' (Cs-Type, "
        "Cs-Encoding); repeatable.")] = None,
) -> None:
    """Decode one raw message body read on stdin and print it as JSON (for `nats sub
    --translate 'cs decode'`, `nats kv get --raw`, and bodies saved to files)."""
    from cli import tracing

    headers: dict[str, str] = {}
    for item in header or ():
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise fail(f"--header {item!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    if type_name:
        headers[codec.HEADER_TYPE] = type_name
    data = sys.stdin.buffer.read(codec.MAX_MESSAGE_BYTES + 1)
    if not data:
        raise fail("nothing on stdin: pipe one message body into `cs decode`")
    try:
        doc = tracing.decode_raw(data, headers)
    except DecodeError as exc:
        raise fail(f"cannot decode the {len(data)}-byte body: {exc}") from None
    print_json(doc)


@app.command("plan")
def plan_cmd(
    from_queue: Annotated[Path, typer.Option(
        "--from-queue", help="condor_q -long or -json dump to plan for.")],
    from_pool: Annotated[Path | None, typer.Option(
        "--from-pool", help="condor_status -long dump of the pool.")] = None,
    config: Annotated[Path | None, typer.Option(
        help="Site config with the clouds [default: $CS_CONFIG].")] = None,
    as_json: JsonOption = False,
) -> None:
    """What the planner would do for a queue dump, touching no cloud and no bus."""
    from cli.offline import plan_offline

    try:
        site = siteconfig.load(siteconfig.config_path(str(config) if config else None))
        doc = plan_offline(site, from_queue, from_pool)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_json(doc)
    else:
        out.print(views.plan_tables(doc))


@app.command()
def up(
    config: Annotated[Path | None, typer.Option(help="Site config [default: $CS_CONFIG].")] = None,
    state_dir: Annotated[
        Path, typer.Option(help="Where NATS data and service logs are kept.")
    ] = Path("state"),
) -> None:
    """Run everything in the foreground: embedded NATS and every service. Ctrl-C stops all."""
    from cli.supervisor import supervise

    try:
        site = siteconfig.load(siteconfig.config_path(str(config) if config else None))
    except ConfigError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(supervise(site, state_dir.resolve()))


def main() -> None:
    """Entry point of `cs`."""
    app()


if __name__ == "__main__":
    main()
