"""`cloud_status` and `cloud_admin`: v1's commands and flags, on our admin endpoints.

For operators' muscle memory. Flags v1 had that mean nothing here (proxies, quick exit, user
limits, aliases) fail with a line naming what to use instead; everything else maps onto the
same requests `cs` makes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import typer

from bus import calls, vmstates
from bus.client import AdminClient
from bus.connection import Bus
from bus.schemas import ConfigReloadRequest, StatusReply, VmDrainRequest, VmKillRequest
from cli import v1
from cli.common import with_bus

VERSION = "cloudscheduler (v1-compatible cloud_status/cloud_admin)"
T = TypeVar("T")


def _nats(server: str | None, port: int | None) -> str | None:
    """v1's -s HOST / -p PORT name the scheduler; here they name the NATS server."""
    if server is None and port is None:
        return None
    return f"nats://{server or '127.0.0.1'}:{port or 4222}"


def _run(nats: str | None, work: Callable[[Bus], Awaitable[T]]) -> T:
    """`cs`'s bus handling (one-line errors), with its exit turned into a plain exit."""
    try:
        return with_bus(nats, work)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None


def _unsupported(flag: str, instead: str) -> SystemExit:
    print(f"{flag}: not available in cloudscheduler; {instead}", file=sys.stderr)
    return SystemExit(2)


def status_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `cloud_status`."""
    p = argparse.ArgumentParser(prog="cloud_status",
                                description="Cloud and VM status, in v1's format.")
    p.add_argument("-a", "--all", action="store_true", help="all clouds")
    p.add_argument("-c", "--cloud", help="one cloud")
    p.add_argument("-m", "--vms", action="store_true", help="VMs")
    p.add_argument("-n", "--vm", help="one VM (with -c)")
    p.add_argument("-j", "--json", action="store_true", help="JSON")
    p.add_argument("-s", "--server", help="NATS host (v1: the scheduler's host)")
    p.add_argument("-p", "--port", type=int, help="NATS port")
    p.add_argument("-v", "--version", action="store_true")
    for flag in ("-q", "-o", "-u", "-r", "-z", "-w", "-b", "-l"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.version:
        print(VERSION)
        return 0
    for flag, instead in (("q", "the job queue is `cs status` (demand) or condor_q"),
                          ("o", "use `cs status`"), ("u", "use `cs vm list`"),
                          ("r", "startds without a VM show in `cs status --json` (pool)"),
                          ("z", "boot failures show as cloud health in `cs status`"),
                          ("w", "failing VM types show as cloud health in `cs status`"),
                          ("b", "boot times: `cs vm list --json` (created_at, running_at)"),
                          ("l", "the cloud's settings: `cs cloud show NAME --json`")):
        if getattr(args, flag):
            raise _unsupported(f"-{flag}", instead)
    if args.vm and not args.cloud:
        print("-n needs -c CLOUD", file=sys.stderr)
        return 2

    async def work(bus: Bus) -> StatusReply:
        return await AdminClient(bus).full_status()

    status = _run(_nats(args.server, args.port), work)
    if args.vm:
        match = [vm for vm in status.vms if vm.cloud == args.cloud and vm.vm_id == args.vm]
        clouds = [c for c in status.clouds if c.name == args.cloud]
        if not match or not clouds:
            print(f"VM {args.vm} not found on {args.cloud}", file=sys.stderr)
            return 1
        print(json.dumps(v1.vm_json(match[0], clouds[0])))
    elif args.json:
        print(json.dumps(v1.pool_json(status, args.cloud)))
    elif args.vms:
        print(v1.vms(status, args.cloud))
    elif args.cloud:
        print(v1.cluster_info(status, args.cloud), end="")
    else:
        print(v1.clusters(status), end="")
    return 0


def admin_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `cloud_admin`."""
    p = argparse.ArgumentParser(prog="cloud_admin", description="v1's cloud_admin flags.")
    p.add_argument("-e", "--enable", metavar="CLOUD")
    p.add_argument("-d", "--disable", metavar="CLOUD")
    p.add_argument("-c", "--cloud")
    p.add_argument("-n", "--vm", metavar="ID")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-b", "--number", type=int, metavar="NUM")
    p.add_argument("-k", "--kill", action="store_true")
    p.add_argument("-o", "--retire", action="store_true", help="force retire (drain)")
    p.add_argument("-r", "--reconfig", action="store_true", help="reload the config file")
    p.add_argument("-s", "--server")
    p.add_argument("-p", "--port", type=int)
    for flag in ("-m", "-x", "-q", "-i", "-j", "-t", "-y"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-v", type=int, help=argparse.SUPPRESS)
    p.add_argument("-l", help=argparse.SUPPRESS)
    p.add_argument("-C", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for flag, instead in (
            ("m", "VMs are never left unmanaged; drain (-o) or kill (-k) them"),
            ("x", "VM states come from the clouds; a stuck VM is killed by the planner"),
            ("q", "stopping the scheduler never kills VMs"),
            ("i", "no user limits file"), ("j", "no user limits file"),
            ("t", "no cloud aliases"), ("y", "no cloud aliases")):
        if getattr(args, flag):
            raise _unsupported(f"-{flag}", instead)
    if args.v is not None:
        raise _unsupported("-v", "set max_vms in the config file, then -r (or cs config "
                                 "reload)")
    if args.l is not None:
        raise _unsupported("-l", "each service logs at INFO; see its log")
    nats = _nats(args.server, args.port)

    if args.enable or args.disable:
        name, on = (args.enable, True) if args.enable else (args.disable, False)
        reply = _run(nats, lambda bus: AdminClient(bus).set_enabled(name, on))
        print(f"Cloud {name} {'enabled' if on else 'disabled'}"
              + ("" if reply.changed else " (no change)"))
        return 0
    if args.reconfig:
        reloaded = _run(nats, lambda bus: AdminClient(bus).call(calls.CONFIG_RELOAD,
                                                                ConfigReloadRequest()))
        print(f"Reloaded {reloaded.path}")
        return 0
    if args.kill or args.retire:
        if not args.cloud or not (args.vm or args.all or args.number):
            print(f"-{'k' if args.kill else 'o'} needs -c CLOUD and one of -n ID, -a, -b NUM",
                  file=sys.stderr)
            return 2
        return _act(nats, args.cloud, args.vm, args.all, args.number, drain=args.retire)
    p.print_usage(sys.stderr)
    return 2


def _act(nats: str | None, cloud: str, vm: str | None, every: bool, number: int | None,
         drain: bool) -> int:
    async def work(bus: Bus) -> tuple[int, list[str]]:
        client = AdminClient(bus)
        ids: tuple[str, ...] = (vm,) if vm else ()
        if number:
            status = await client.full_status(cloud)
            # The youngest first: they have done (and lose) the least work.
            mine = sorted((v for v in status.vms if v.cloud == cloud
                           and v.state not in vmstates.ENDING),
                          key=lambda v: -v.created_at)
            ids = tuple(v.vm_id for v in mine[:number])
        if drain:
            drained = await client.call(calls.VM_DRAIN, VmDrainRequest(cloud=cloud, vm_ids=ids,
                                                        all_on_cloud=every))
            return len(drained.drained), [f"{s.vm_id}: {s.reason}" for s in drained.skipped]
        killed = await client.call(calls.VM_KILL,
                                   VmKillRequest(cloud=cloud, vm_ids=ids, all_on_cloud=every))
        return len(killed.killed), [f"{s.vm_id}: {s.reason}" for s in killed.skipped]

    done, skipped = _run(nats, work)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"{'Retiring' if drain else 'Killing'} {done} VM(s) on {cloud}")
    return 0 if done or not skipped else 1

