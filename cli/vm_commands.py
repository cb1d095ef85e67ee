"""`cs vm`: list, kill and drain VMs."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bus import calls, subjects
from bus.client import AdminClient
from bus.connection import Bus
from bus.errors import AdminError, ConfigError, ErrorCode
from bus.schemas import PoolSnapshot, StatusReply, VmDrainRequest, VmKillRequest
from cli.common import (
    JsonOption,
    NatsOption,
    OutputOption,
    err,
    fail,
    out,
    output_format,
    show,
    width,
    with_bus,
)
from services.admin import views

vm_app = typer.Typer(help="List, kill and drain VMs.", no_args_is_help=True)


@vm_app.command("list")
def vm_list(
    nats: NatsOption = None, as_json: JsonOption = False, output: OutputOption = "table",
    cloud: Annotated[str | None, typer.Option(help="Only VMs on this cloud.")] = None,
) -> None:
    """VMs with cloud, type, state, age and startd state."""
    output = output_format(output, as_json)
    if cloud:
        try:
            subjects.check_token(cloud, "cloud")
        except ConfigError as exc:
            raise fail(str(exc)) from None

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
            table = views.vms_table(reply, time.time(), width(output),
                                    title=f"VMs ({page.total})", only=only, header=first)
            if first:
                only = {str(col.header) for col in table.columns}
            first = False
            show(table, output)
        if output == "json":
            print("[]" if first else "\n]")
        elif first:
            show(views.vms_table(StatusReply(), time.time(), width(output)), output)

    with_bus(nats, work)


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
        raise fail("--all needs --cloud NAME")
    if not all_on_cloud and not vm_ids:
        raise fail(f"name the VMs to {verb}, or use --cloud NAME --all")
    request = VmKillRequest(cloud=cloud or "", vm_ids=tuple(vm_ids or ()),
                            all_on_cloud=all_on_cloud)

    async def work(bus: Bus) -> tuple[dict[str, str], int]:
        client = AdminClient(bus)
        if verb == "kill":
            killed = await client.call(calls.VM_KILL, request)
            done, skipped = killed.killed, killed.skipped
        else:
            drained = await client.call(calls.VM_DRAIN, VmDrainRequest(**request.model_dump()))
            done, skipped = drained.drained, drained.skipped
        for skip in skipped:
            err.print(escape(f"skipped {skip.vm_id}: {skip.reason}"), highlight=False)
        if wait and done:
            await _wait_gone(client, dict(done), timeout,
                             "deleting" if verb == "kill" else "draining")
        return dict(done), len(skipped)

    done, skipped = with_bus(nats, work)
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
                raise AdminError(ErrorCode.TIMEOUT, f"{len(pending)} VM(s) still {doing} after "
                                 f"{timeout:.0f}s: {', '.join(sorted(pending)[:5])}")
            await asyncio.sleep(0.5)
