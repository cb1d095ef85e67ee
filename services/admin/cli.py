"""`cs`: the operator's command line. It speaks only NATS (through `bus`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import siteconfig
from bus import codec, subjects
from bus.client import AdminClient, discover
from bus.connection import Bus, redacted
from bus.errors import AdminError, BusUnavailable, ConfigError, DecodeError
from bus.schemas import PoolSnapshot, StatusReply, VmDrainRequest, VmKillRequest
from services.admin import views
from siteconfig.textfile import read_text

T = TypeVar("T")

app = typer.Typer(name="cs", help="Operate cloudscheduler.", no_args_is_help=True)
cloud_app = typer.Typer(help="List, show, enable and disable clouds.", no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")
vm_app = typer.Typer(help="List, kill and drain VMs.", no_args_is_help=True)
app.add_typer(vm_app, name="vm")
config_app = typer.Typer(help="Check, reload and import the site configuration.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")

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


def _output(output: str, as_json: bool) -> str:
    """The output format asked for (`--json` is `-o json`); a wrong one is an error."""
    if output not in OUTPUTS:
        raise _fail(f"-o {output!r}: use one of {', '.join(OUTPUTS)}")
    return "json" if as_json else output


def _width(output: str) -> int | None:
    """How wide tables may be: the terminal's width, or None for every column."""
    return None if output == "wide" else out.size.width


WIDE_CHARS = 1000
"""Line length `-o wide` prints at, whatever the terminal: every column whole (as kubectl's
`-o wide` does), the terminal wraps the long lines."""


def _show(renderable: Any, output: str) -> None:
    """Print tables as `output` asks: fitted to the terminal, or every column whole."""
    if output == "wide":
        Console(width=WIDE_CHARS, force_terminal=out.is_terminal or None).print(renderable)
    else:
        out.print(renderable)


def _url(nats: str | None) -> str:
    return nats or os.environ.get("CS_NATS_URL") or siteconfig.DEFAULT_NATS_URL


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _with_bus(nats: str | None, work: Callable[[Bus], Awaitable[T]]) -> T:
    """Connect, run `work`, close; every expected failure becomes one line and exit 1."""
    url = _url(nats)

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
            raise _fail(str(exc)) from None  # credentials, CA file, TLS: it says what
        raise _fail(f"cannot reach NATS at {redacted(url)}; start the system with `make run` "
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
    output = _output(output, as_json)
    if watch and output == "json":
        raise _fail("--watch shows tables; use --json without it (or in a loop)")
    if since:
        if watch:
            raise _fail("--since shows the history once; use --watch without it")
        _history(nats, since, rows, output)
        return
    def read(client: AdminClient) -> Awaitable[StatusReply]:
        return client.full_status() if every_vm or output == "json" else client.status()

    if not watch:
        reply = _with_bus(nats, lambda bus: read(AdminClient(bus)))
        if output == "json":
            _print_json(views.status_json(reply))
        else:
            _show(views.status_tables(reply, width=_width(output)), output)
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
                out.print(views.status_tables(await read(client), width=_width(output)))
                if await stopped():
                    return
        with Live(views.status_tables(await read(client), width=_width(output)),
                  console=out, auto_refresh=False, screen=False) as live:
            while not await stopped():
                live.update(views.status_tables(await read(client), width=_width(output)),
                            refresh=True)

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the watch began
        _with_bus(nats, refresh)


def _history(nats: str | None, since: str, rows: int, output: str) -> None:
    """`cs status --since`: the history as a table (or JSON)."""
    from services.admin import charts

    try:
        since_s = charts.parse_duration(since)
    except ConfigError as exc:
        raise _fail(f"--since: {exc}") from None
    reply = _with_bus(nats, lambda bus: AdminClient(bus).history(since_s, rows))
    if output == "json":
        _print_json(reply.model_dump(mode="json"))
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
    _show(table, output)


@cloud_app.command("list")
def cloud_list(nats: NatsOption = None, as_json: JsonOption = False,
               output: OutputOption = "table") -> None:
    """Every cloud with its provider, enabled flag and VM counts."""
    output = _output(output, as_json)
    reply = _with_bus(nats, lambda bus: AdminClient(bus).status())
    if output == "json":
        _print_json([c.model_dump(mode="json") for c in reply.clouds])
    else:
        _show(views.clouds_table(reply, time.time(), _width(output)), output)


def _toggle(name: str, enabled: bool, nats: str | None) -> None:
    try:
        subjects.check_token(name, "cloud")
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    reply = _with_bus(nats, lambda bus: AdminClient(bus).set_enabled(name, enabled))
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
            raise AdminError("404", f"unknown cloud {name!r}; known clouds: {known}")
        return match[0], await client.instances(name)

    cloud, listing = _with_bus(nats, work)
    if as_json:
        _print_json({"cloud": cloud.model_dump(mode="json"),
                     "instances": [i.model_dump(mode="json") for i in listing.instances]})
    else:
        out.print(escape(f"{cloud.name}: provider {cloud.provider}, "
                         f"{'enabled' if cloud.enabled else 'disabled'}, "
                         f"max_vms {cloud.max_vms}"))
        out.print(views.instances_table(listing))


@vm_app.command("list")
def vm_list(
    nats: NatsOption = None, as_json: JsonOption = False, output: OutputOption = "table",
    cloud: Annotated[str | None, typer.Option(help="Only VMs on this cloud.")] = None,
) -> None:
    """VMs with cloud, type, state, age and startd state."""
    output = _output(output, as_json)
    if cloud:
        try:
            subjects.check_token(cloud, "cloud")
        except ConfigError as exc:
            raise _fail(str(exc)) from None

    async def work(bus: Bus) -> None:
        # Printed page by page as the pages come: the first line does not wait for the
        # last of 100,000 VMs.
        only: set[str] | None = None
        first = True
        async for page in AdminClient(bus).vm_pages(cloud or ""):
            reply = StatusReply(vms=page.vms, pool=PoolSnapshot(
                source="", taken_at=0.0, startds=page.startds))
            if output == "json":
                for i, doc in enumerate(views.status_json(reply)["vms"]):
                    lead = "[\n" if first and i == 0 else ",\n"
                    print(lead + textwrap.indent(json.dumps(doc, indent=2, sort_keys=True),
                                                 "  "), end="")
                    first = False
                continue
            table = views.vms_table(reply, time.time(), _width(output),
                                    title=f"VMs ({page.total})", only=only, header=first)
            if first:
                only = {str(col.header) for col in table.columns}
            first = False
            _show(table, output)
        if output == "json":
            print("[]" if first else "\n]")
        elif first:
            _show(views.vms_table(StatusReply(), time.time(), _width(output)), output)

    _with_bus(nats, work)


@vm_app.command("kill")
def vm_kill(
    vm_ids: Annotated[list[str] | None, typer.Argument(help="VMs to kill.")] = None,
    cloud: Annotated[str | None, typer.Option(help="The cloud (needed with --all).")] = None,
    all_on_cloud: Annotated[bool, typer.Option("--all", help="Every VM on --cloud.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until they are gone.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for them to go.")] = 300,
    nats: NatsOption = None,
) -> None:
    """Kill VMs now (not drained: running jobs on them are lost)."""
    _vm_action("kill", vm_ids, cloud, all_on_cloud, wait, timeout, nats)


@vm_app.command("drain")
def vm_drain(
    vm_ids: Annotated[list[str] | None, typer.Argument(help="VMs to drain.")] = None,
    cloud: Annotated[str | None, typer.Option(help="The cloud (needed with --all).")] = None,
    all_on_cloud: Annotated[bool, typer.Option("--all", help="Every VM on --cloud.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until they are gone.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for them to go.")] = 3600,
    nats: NatsOption = None,
) -> None:
    """Drain VMs: running jobs finish, the startds leave the pool, then the VMs go."""
    _vm_action("drain", vm_ids, cloud, all_on_cloud, wait, timeout, nats)


def _vm_action(verb: str, vm_ids: list[str] | None, cloud: str | None, all_on_cloud: bool,
               wait: bool, timeout: float, nats: str | None) -> None:
    """`cs vm kill` and `cs vm drain`: the request, the skipped lines, progress, the tally."""
    if all_on_cloud and not cloud:
        raise _fail("--all needs --cloud NAME")
    if not all_on_cloud and not vm_ids:
        raise _fail(f"name the VMs to {verb}, or use --cloud NAME --all")
    request = VmKillRequest(cloud=cloud or "", vm_ids=tuple(vm_ids or ()),
                            all_on_cloud=all_on_cloud)

    async def work(bus: Bus) -> tuple[dict[str, str], int]:
        client = AdminClient(bus)
        if verb == "kill":
            killed = await client.kill(request)
            done, skipped = killed.killed, killed.skipped
        else:
            drained = await client.drain(VmDrainRequest(**request.model_dump()))
            done, skipped = drained.drained, drained.skipped
        for skip in skipped:
            err.print(escape(f"skipped {skip.vm_id}: {skip.reason}"), highlight=False)
        if wait and done:
            await _wait_gone(client, dict(done), timeout,
                             "deleting" if verb == "kill" else "draining")
        return dict(done), len(skipped)

    done, skipped = _with_bus(nats, work)
    out.print(f"{'killed' if verb == 'kill' else 'drained'} {len(done)} VM(s), "
              f"skipped {skipped}")
    if skipped and not done:
        raise typer.Exit(1)


async def _wait_gone(client: AdminClient, pending: dict[str, str], timeout: float,
                     doing: str = "deleting") -> None:
    """Progress until every VM (by name and the intent of the kill or drain) has left the
    registry; a drained VM is deleted under a new intent once its startd has left."""
    total = len(pending)
    with Progress(TextColumn(doing), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task(doing, total=total)
        deadline = asyncio.get_running_loop().time() + timeout
        while pending:
            status = await client.full_status()
            # A drained VM's record lives on under the kill's intent until deleted; a record
            # of the same name created after the request is a new VM.
            still = {vm.vm_id for vm in status.vms
                     if vm.intent_id in pending.values() or vm.state == "deleting"}
            pending = {v: i for v, i in pending.items() if v in still}
            progress.update(task, completed=total - len(pending))
            if not pending:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise AdminError("timeout", f"{len(pending)} VM(s) still {doing} after "
                                 f"{timeout:.0f}s: {', '.join(sorted(pending)[:5])}")
            await asyncio.sleep(0.5)


@app.command()
def services(nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """Live service instances, found through the NATS services API ($SRV)."""
    found = _with_bus(nats, lambda bus: discover(bus))
    if as_json:
        _print_json([{"name": s.name, "id": s.id, "version": s.version,
                      "endpoints": list(s.endpoints)} for s in found])
        return
    if not found:
        raise _fail("no service answered; start them with `make run` (or `cs up`)")
    out.print(views.services_table(found))


@config_app.command("check")
def config_check(
    config: Annotated[Path | None, typer.Option(help="Site config [default: $CS_CONFIG].")] = None,
) -> None:
    """Validate the site config without touching the bus; say what it defines."""
    from services.admin.offline import check_config

    try:
        site = siteconfig.load(siteconfig.config_path(str(config) if config else None))
        check_config(site)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    out.print(escape(f"{site.path}: ok: site {site.site}, NATS {redacted(site.nats_url)}, "
                     f"{len(site.clouds)} cloud(s): " + ", ".join(
                         f"{c.name} ({c.provider}, {'enabled' if c.enabled else 'disabled'} "
                         "at first start)" for c in site.clouds)), soft_wrap=True)


@config_app.command("import-v1")
def config_import_v1(
    resources: Annotated[Path, typer.Argument(help="v1's cloud_resources.conf")],
    scheduler: Annotated[Path | None, typer.Argument(help="v1's cloud_scheduler.conf")] = None,
    site: Annotated[str, typer.Option(help="Installation id for the new config.")] = "imported",
    out_path: Annotated[Path, typer.Option("--out", help="The site config to write.")] = Path(
        "cloudscheduler.toml"),
    clouds_yaml: Annotated[Path, typer.Option(
        help="Where the OpenStack credentials go (mode 600).")] = Path("clouds.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Convert a v1 configuration; every key not carried over is listed with the reason."""
    from services.admin.importv1 import convert

    for target in (out_path, clouds_yaml):
        if target.exists() and not force:
            raise _fail(f"{target} exists; pass --force to overwrite it")
    try:
        imported = convert(
            read_text(resources, "a v1 cloud_resources.conf"), str(resources),
            read_text(scheduler, "a v1 cloud_scheduler.conf") if scheduler else "",
            str(scheduler or ""), site)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    out_path.write_text(imported.toml)
    clouds_yaml.touch(mode=0o600)
    clouds_yaml.chmod(0o600)
    clouds_yaml.write_text(json.dumps(imported.clouds_yaml, indent=2) + "\n")
    for line in imported.unmapped:
        err.print(escape(line), highlight=False, soft_wrap=True)
    try:
        loaded = siteconfig.load(out_path)
    except ConfigError as exc:  # a bug of the converter: say so rather than leave it
        raise _fail(f"the converted config does not load: {exc}") from None
    out.print(escape(f"wrote {out_path} ({len(loaded.clouds)} cloud(s)) and {clouds_yaml}; "
                     f"{len(imported.unmapped)} key(s) not imported (listed above); point "
                     f"[provisioner] clouds_yaml at {clouds_yaml}"), soft_wrap=True)


@config_app.command("nats-users")
def config_nats_users(
    out_dir: Annotated[Path, typer.Argument(help="Directory for the files (created, mode 700).")],
    url: Annotated[str, typer.Option(
        help="The NATS URL(s) the services and the CLI connect to.")] = "nats://127.0.0.1:4222",
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Lock the bus down: a nats-server `authorization` block with one user per service (each
    allowed only its own subjects) plus `operator` and `viewer` for the CLI, and one
    `<user>.env` file each with its CS_NATS_URL. Passwords are random; files are mode 600."""
    from bus.permissions import generate

    auth_path = out_dir / "auth.conf"
    if auth_path.exists() and not force:
        raise _fail(f"{auth_path} exists; pass --force to make new passwords for everyone")
    block, urls = generate(url)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, text in [(auth_path, block), *(
            (out_dir / f"{user}.env", f"CS_NATS_URL={user_url}\n")
            for user, user_url in urls.items())]:
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)
    out.print(escape(
        f"wrote {auth_path} (include it in nats-server's config: include \"auth.conf\") and "
        f"{len(urls)} credential files: {', '.join(f'{u}.env' for u in urls)}; give each "
        "service its own (supervisord: environment=, systemd: EnvironmentFile=)"),
        soft_wrap=True)


@config_app.command("reload")
def config_reload(nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """Have the admin service re-read its config file: clouds added or changed take effect
    (enabled flags set with `cs cloud enable/disable` are kept)."""
    reply = _with_bus(nats, lambda bus: AdminClient(bus).reload())
    if as_json:
        _print_json(reply.model_dump(mode="json"))
        return
    out.print(escape(f"{reply.path}: reloaded; clouds added: {', '.join(reply.added) or '-'}; "
                     f"changed: {', '.join(reply.refreshed) or '-'}; unchanged: "
                     f"{len(reply.unchanged)}"), soft_wrap=True)
    if reply.not_in_config:
        err.print(escape("in the registry but not in the file (left as they are): "
                         + ", ".join(reply.not_in_config)), highlight=False)


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
    from services.admin import tracing

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
        _with_bus(nats, work)


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
    from services.admin import tracing

    headers: dict[str, str] = {}
    for item in header or ():
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise _fail(f"--header {item!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    if type_name:
        headers[codec.HEADER_TYPE] = type_name
    data = sys.stdin.buffer.read(codec.MAX_MESSAGE_BYTES + 1)
    if not data:
        raise _fail("nothing on stdin: pipe one message body into `cs decode`")
    try:
        doc = tracing.decode_raw(data, headers)
    except DecodeError as exc:
        raise _fail(f"cannot decode the {len(data)}-byte body: {exc}") from None
    _print_json(doc)


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
