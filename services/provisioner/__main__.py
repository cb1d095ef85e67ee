"""cs-provisioner PROVIDER: boot and delete worker VMs on every cloud of one provider
(`cs-provisioner-<provider>` is the same program under the provider's service name)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from pathlib import Path
from typing import cast

from bus.connection import Bus
from bus.schemas import CloudRecord
from providers.spec import Provider
from providers.table import PROVIDERS
from providers.table import provider as find_provider
from provisioning.driver import CloudDriver, DriverContext, MakeDriver
from provisioning.service import run_provisioner
from provisioning.settings import ProvisionerServiceSettings
from provisioning.userdata import WorkerSettings
from runtime.runloop import ServiceBody, ServiceFactory, service_main
from siteconfig import SiteConfig

PROGRAM = "cs-provisioner"


def driver_maker(provider: Provider) -> MakeDriver:
    """The provider's `make_driver`, imported by name (only here is a cloud SDK loaded)."""
    module = importlib.import_module(provider.driver)
    return cast(MakeDriver, module.make_driver)


def factory(provider: Provider) -> ServiceFactory:
    """The service body's builder for one provider."""
    def build(site: SiteConfig, log: logging.Logger) -> ServiceBody:
        settings = ProvisionerServiceSettings.from_site(site)
        context = DriverContext(site=settings.site, worker=WorkerSettings.from_site(site),
                                call_timeout_s=settings.call_timeout_s,
                                provisioner=site.section("provisioner"))
        make = driver_maker(provider)

        async def make_driver(cloud: CloudRecord) -> CloudDriver:
            return make(cloud, context)

        async def body(bus: Bus, stop: asyncio.Event) -> None:
            await run_provisioner(bus, provider.name, make_driver, settings.loops, stop)

        return body
    return build


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-provisioner PROVIDER [--config FILE]`, and of
    `cs-provisioner-PROVIDER [--config FILE]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    called = Path(sys.argv[0]).name if argv is None else PROGRAM
    name = called.removeprefix(f"{PROGRAM}-") if called.startswith(f"{PROGRAM}-") else ""
    if not name:
        if not args or args[0].startswith("-"):
            print(f"usage: {PROGRAM} PROVIDER [--config FILE]  (PROVIDER: "
                  f"{', '.join(PROVIDERS)})", file=sys.stderr)
            return 2
        name = args.pop(0)
    try:
        provider = find_provider(name)
    except KeyError as exc:
        print(f"{PROGRAM}: {exc.args[0]}", file=sys.stderr)
        return 2
    return service_main(provider.program, f"{provider.program}: {provider.summary}", args,
                        factory(provider))


if __name__ == "__main__":
    raise SystemExit(main())
