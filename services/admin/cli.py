"""`cs`: the operator's command line. It speaks only NATS (through `bus`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from bus import siteconfig, subjects
from bus.client import AdminClient
from bus.connection import Bus
from bus.errors import AdminError, BusUnavailable, ConfigError, DecodeError
from services.admin import views

T = TypeVar("T")

app = typer.Typer(name="cs", help="Operate cloudscheduler.", no_args_is_help=True)
cloud_app = typer.Typer(help="List, show, enable and disable clouds.", no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")

out = Console()
err = Console(stderr=True)

NatsOption = Annotated[
    str | None,
    typer.Option("--nats", help="NATS URL [default: $CS_NATS_URL or nats://127.0.0.1:4222]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _url(nats: str | None) -> str:
    return nats or os.environ.get("CS_NATS_URL") or siteconfig.DEFAULT_NATS_URL


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _with_bus(nats: str | None, work: Callable[[Bus], Awaitable[T]]) -> T:
    """Connect, run `work`, close; every expected failure becomes one line and exit 1."""
    url = _url(nats)

    async def run() -> T:
        bus = await Bus.connect(url, "cs-cli", wait_s=2.0)
        try:
            return await work(bus)
        finally:
            await bus.close()

    try:
        return asyncio.run(run())
    except BusUnavailable:
        raise _fail(f"cannot reach NATS at {url}; start the system with `make run` "
                    "(or `cs up --config FILE`), or point --nats / CS_NATS_URL at it") from None
    except AdminError as exc:
        if exc.code == "no_responders":
            raise _fail(f"{exc.message}; start cs-admin (`cs up` runs every service)") from None
        raise _fail(exc.message) from None
    except DecodeError as exc:
        raise _fail(f"unreadable reply ({exc}); are cs and the services the same version?"
                    ) from None


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


@app.command()
def status(nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """Clouds, VMs with their states, demand, and the planner's reasons."""
    reply = _with_bus(nats, lambda bus: AdminClient(bus).status())
    if as_json:
        _print_json(views.status_json(reply))
    else:
        out.print(views.status_tables(reply))


@cloud_app.command("list")
def cloud_list(nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """Every cloud with its provider, enabled flag and VM counts."""
    reply = _with_bus(nats, lambda bus: AdminClient(bus).status())
    if as_json:
        _print_json([c.model_dump(mode="json") for c in reply.clouds])
    else:
        out.print(views.status_tables(reply).renderables[0])


def _toggle(name: str, enabled: bool, nats: str | None) -> None:
    try:
        subjects.check_token(name, "cloud")
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    reply = _with_bus(nats, lambda bus: AdminClient(bus).set_enabled(name, enabled))
    word = "enabled" if reply.enabled else "disabled"
    note = "" if reply.changed else " (it already was)"
    out.print(f"cloud {reply.name} {word}{note}")


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
            raise AdminError("404", f"unknown cloud {name!r}; known clouds: {known}")
        return match[0], await client.instances(name)

    cloud, listing = _with_bus(nats, work)
    if as_json:
        _print_json({"cloud": cloud.model_dump(mode="json"),
                     "instances": [i.model_dump(mode="json") for i in listing.instances]})
    else:
        out.print(f"{cloud.name}: provider {cloud.provider}, "
                  f"{'enabled' if cloud.enabled else 'disabled'}, max_vms {cloud.max_vms}")
        out.print(views.instances_table(listing))


@app.command()
def trace(
    nats: NatsOption = None,
    subject: Annotated[str, typer.Option(help="Subject filter.")] = subjects.everything(),
    count: Annotated[int, typer.Option(help="Stop after this many messages (0: never).")] = 0,
) -> None:
    """Print every message on the bus, decoded: subject, headers, body. Ctrl-C stops."""

    async def work(bus: Bus) -> None:
        seen = 0
        async for msg in bus.tail(subject):
            print(views.trace_line(msg), flush=True)
            seen += 1
            if count and seen >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):
        _with_bus(nats, work)


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
    from services.admin.offline import plan_offline

    try:
        site = siteconfig.load(siteconfig.config_path(str(config) if config else None))
        doc = plan_offline(site, from_queue, from_pool)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(doc)
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
    from services.admin.supervisor import supervise

    try:
        site = siteconfig.load(siteconfig.config_path(str(config) if config else None))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(supervise(site, state_dir.resolve()))


def main() -> None:
    """Entry point of `cs`."""
    app()


if __name__ == "__main__":
    main()
