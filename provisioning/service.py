"""A provisioner service: one `CloudWorker` per cloud of its provider found in the cloud
bucket, new clouds picked up and changed ones given a new driver as the bucket changes."""

from __future__ import annotations

import asyncio
import logging

from bus import calls, subjects
from bus.connection import Bus
from bus.micro import Endpoint, serve
from bus.mirror import KvMirror
from bus.schemas import CloudRecord, VmRecord
from provisioning.driver import DriverFactory
from provisioning.rules import driver_settings
from provisioning.settings import ProvisionerSettings
from provisioning.worker import CloudWorker
from registry.compact import Compactor
from runtime import logs
from runtime.runloop import every, keep_running

log = logging.getLogger("provisioner")

DRIVER_CLOSE_S = 5.0
"""How long a stopping provisioner waits for a driver to close its connections."""


async def _refresh(worker: CloudWorker, record: CloudRecord, factory: DriverFactory) -> None:
    """A new driver when the cloud's settings changed (a config reload): the old one finishes
    what it is doing and is closed."""
    if worker.record is not None and driver_settings(record) == driver_settings(worker.record):
        return
    old = worker.use_driver(await factory(record), record)
    await old.close()
    log.info("%s", logs.fields(event="cloud settings changed; new driver", cloud=record.name))


async def run_provisioner(
    bus: Bus, provider: str, factory: DriverFactory, settings: ProvisionerSettings,
    stop: asyncio.Event,
) -> None:
    """Serve every cloud of `provider` found in the cloud bucket, picking up new ones."""
    clouds_kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    workers: dict[str, tuple[CloudWorker, list[asyncio.Task[None]]]] = {}
    # One mirror of the whole registry for every cloud served here (other providers' VMs
    # too: about 1 KB each), read before the first reconcile; until it is, and whenever it
    # lags, a reconcile reads its cloud's VMs from the server as before.
    registry = KvMirror(bus.kv(subjects.VMS_BUCKET, VmRecord), compact=Compactor(),
                        grouped=True)
    following = asyncio.create_task(registry.keep_loaded(stop))

    async def serve_new(record: CloudRecord) -> None:
        driver = await factory(record)
        worker = CloudWorker(bus, provider, record.name, driver, settings, record, registry)
        await serve(bus, f"{subjects.PROVIDER_SERVICE_PREFIX}-{provider}", "0.1.0",
                    subjects.provider_group(record.name),
                    [Endpoint(calls.INSTANCES, worker.listing)])
        tasks = [asyncio.create_task(keep_running(
                     f"intent consumer of {record.name}", stop, worker.consume, log)),
                 asyncio.create_task(worker.run_reconcile(stop))]
        workers[record.name] = (worker, tasks)
        log.info("%s", logs.fields(event="serving", cloud=record.name, provider=provider))

    async def step() -> None:
        # A bus outage (a NATS node lost, leaders re-elected) fails this step; `every` logs
        # it and tries again, so the clouds already served keep their workers meanwhile.
        records = [v.value for v in (await clouds_kv.items()).values()]
        for record in records:
            if record.provider != provider:
                continue
            try:
                if record.name in workers:
                    await _refresh(workers[record.name][0], record, factory)
                else:
                    await serve_new(record)
            except Exception:
                # One cloud whose driver cannot be built must not keep the others unserved.
                log.exception("%s", logs.fields(event="cannot serve cloud", cloud=record.name))

    try:
        await every(settings.reconcile_interval_s, stop, step, log)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await registry.close()
        for worker, tasks in workers.values():
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                # Bounded: a driver whose threads are all stuck in a hung cloud API cannot
                # even run its close; the process exits anyway (see runtime.runloop).
                await asyncio.wait_for(worker.driver.close(), DRIVER_CLOSE_S)
            except Exception as exc:
                log.warning("%s", logs.fields(event="driver did not close", cloud=worker.cloud,
                                              error=repr(exc)))
