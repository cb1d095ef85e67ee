"""cs-admin: answer `cs` over the NATS services API; keep operator state in KV."""

from __future__ import annotations

import asyncio
import logging

from bus import subjects
from bus.connection import Bus
from bus.micro import serve
from runtime import logs
from runtime.runloop import ServiceBody, service_main
from services.admin import history
from services.admin.service import AdminService
from services.admin.statuspage import StatusPage, listen_address
from siteconfig import SiteConfig

SERVICE = "cs-admin"


def build(site: SiteConfig, log: logging.Logger) -> ServiceBody:
    """The admin service's body: seed cloud records, then answer until stopped."""

    page_at = listen_address(site)
    interval_s = history.interval_of(site)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        admin = AdminService(bus, site.path, interval_s)
        if site.launcher_problem:
            log.warning("%s", site.launcher_problem)
            bus.note_problem(site.launcher_problem)
        await admin.seed(site.clouds)
        following = asyncio.create_task(admin.follow(stop))
        service = await serve(bus, subjects.ADMIN_SERVICE, "0.1.0", subjects.ADMIN_GROUP,
                              admin.endpoints(), "cloudscheduler admin")
        log.info("%s", logs.fields(event="serving", group=subjects.ADMIN_GROUP,
                                   clouds=len(site.clouds)))
        recording = asyncio.create_task(history.record(bus, admin.history_point,
                                                       interval_s, stop))
        page = StatusPage(admin.status, site.site, bus.metrics, admin.history,
                          admin.vm_list)
        if page_at is not None:
            try:
                port = await page.start(*page_at)
                log.info("%s", logs.fields(event="status page",
                                           url=f"http://{page_at[0]}:{port}/"))
            except OSError as exc:
                # The admin API matters more than the page: said, and the service goes on.
                problem = (f"cannot serve the status page on {page_at[0]}:{page_at[1]} "
                           f"({exc.strerror}); change [admin] status_page")
                log.error("%s", problem)
                bus.note_problem(problem)
        await stop.wait()
        # A point being taken or the registry being read (seconds at 100,000 VMs) must not
        # hold the exit: both are taken again by the next start.
        for task in (recording, following):
            task.cancel()
        await asyncio.gather(recording, following, return_exceptions=True)
        await page.close()
        await service.stop()
        await admin.close()

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-admin`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
