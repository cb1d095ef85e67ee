"""cs-planner: turn demand into VM intents, one level-triggered cycle at a time."""

from __future__ import annotations

import argparse
import asyncio

from bus import logs, siteconfig
from bus.connection import Bus
from bus.errors import ConfigError
from bus.runloop import every, run_service
from services.planner.settings import PlannerSettings
from services.planner.shell import PlannerShell

SERVICE = "cs-planner"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-planner`."""
    parser = argparse.ArgumentParser(prog=SERVICE, description=__doc__)
    parser.add_argument("--config", help="site config file (default: $CS_CONFIG)")
    args = parser.parse_args(argv)
    log = logs.setup(SERVICE)
    try:
        settings = PlannerSettings.from_site(
            siteconfig.load(siteconfig.config_path(args.config)))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        shell = PlannerShell(bus, settings)
        await every(settings.interval_s, stop, shell.step, log)

    return run_service(SERVICE, settings.nats_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
