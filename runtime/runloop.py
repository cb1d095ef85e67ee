"""The service run-loop: connect, create infrastructure, run, stop cleanly on a signal."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable

import siteconfig
from bus import subjects
from bus.connection import Bus
from bus.errors import BusUnavailable, ConfigError
from bus.link import redacted
from bus.schemas import ServiceHealth
from runtime import logs
from runtime.observe import ObserveSettings

ServiceBody = Callable[[Bus, asyncio.Event], Awaitable[None]]
ServiceFactory = Callable[[siteconfig.SiteConfig, logging.Logger], ServiceBody]
"""Builds a service's body from the site config (raising ConfigError for bad settings)."""


def service_main(
    service: str, description: str, argv: list[str] | None, factory: ServiceFactory
) -> int:
    """The whole `main()` of a service: arguments, logging, config, then `run_service`."""
    parser = argparse.ArgumentParser(prog=service, description=description)
    parser.add_argument("--config", help="site config file (default: $CS_CONFIG)")
    args = parser.parse_args(argv)
    log = logs.setup(service, fmt=os.environ.get("CS_LOG_FORMAT", "text"))
    try:
        site = siteconfig.load(siteconfig.config_path(args.config))
        observe = ObserveSettings.from_site(site, service, os.environ)
        log = logs.setup(service, observe.log_level, observe.log_format)
        body = factory(site, log)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    code = run_service(service, site.nats_url, body, replicas=site.nats_replicas,
                       ca_file=site.nats_ca_file, observe=observe)
    stuck = unfinished_threads(THREAD_GRACE_S)
    if stuck:
        # A cloud call that never answers (a hung API, a black-holed network) must not keep
        # a stopping service alive until its HTTP timeout, or forever: the supervisor waits
        # for the exit. Nothing is lost: a call whose outcome was not recorded has an
        # unacked intent, which comes back to the next provisioner.
        log.warning("%s", logs.fields(
            event="leaving calls that did not finish", count=len(stuck),
            threads=",".join(sorted(t.name for t in stuck)), grace_s=THREAD_GRACE_S))
        logging.shutdown()
        os._exit(code)
    return code


THREAD_GRACE_S = 3.0
"""How long a stopped service waits for calls still running in threads before it exits."""


def unfinished_threads(grace_s: float) -> list[threading.Thread]:
    """The threads (other than this one and daemons) still running after waiting up to
    `grace_s` seconds in all for them to finish."""
    deadline = time.monotonic() + grace_s
    others = [t for t in threading.enumerate()
              if t is not threading.current_thread() and not t.daemon]
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in others if t.is_alive()]


def run_service(service: str, nats_url: str, body: ServiceBody, wait_s: float = 60.0,
                replicas: int = 1, ca_file: str = "",
                observe: ObserveSettings | None = None) -> int:
    """Run `body(bus, stop)` until SIGINT/SIGTERM; the process exit code. Streams and
    buckets that are missing are created with `replicas` copies."""
    log = logging.getLogger(service)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bus = await Bus.connect(nats_url, service, wait_s=wait_s, ca_file=ca_file)
        log.info("connected url=%s", redacted(nats_url))
        if observe is not None and observe.metrics_port:
            try:
                bus.metrics.serve(observe.metrics_host, observe.metrics_port)
                log.info("metrics url=http://%s:%d/metrics", observe.metrics_host,
                         observe.metrics_port)
            except OSError as exc:
                # No metrics is no reason to stop provisioning: said in the log and in
                # `cs status` (the heartbeat), and the service goes on.
                problem = (f"cannot serve /metrics on {observe.metrics_host}:"
                           f"{observe.metrics_port} ({exc.strerror}): set [metrics] "
                           "base_port, or CS_METRICS_PORT for this process")
                log.error("%s", problem)
                bus.note_problem(problem)
        try:
            await bus.ensure_infra(replicas)
            beat = asyncio.create_task(heartbeat(bus, stop))
            try:
                await body(bus, stop)
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
        finally:
            await bus.close()
        log.info("stopped")
        return 0

    # Not asyncio.run: it waits, without limit, for every thread of the default executor
    # (a `to_thread` call into a hung cloud API). Threads still running when the loop is
    # closed are left to `unfinished_threads`.
    loop = asyncio.new_event_loop()
    pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix=f"{service}-call")
    loop.set_default_executor(pool)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    except (BusUnavailable, ConfigError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        _close(loop)
        pool.shutdown(wait=False, cancel_futures=True)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on `loop` and close it, as asyncio.run does, except that the
    default executor's threads are not waited for."""
    try:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def heartbeat(bus: Bus, stop: asyncio.Event, interval_s: float = 10.0) -> None:
    """Report this instance in the services bucket every `interval_s` until `stop`, with the
    bus problems only it knows of (permission violations arrive asynchronously); the entry
    is removed on a clean stop and expires after a crash."""
    host = socket.gethostname()
    instance = re.sub(r"[^A-Za-z0-9_-]", "-", f"{host}-{os.getpid()}")[:128]
    key = subjects.service_key(bus.service, instance)
    services = bus.kv(subjects.SERVICES_BUCKET, ServiceHealth)
    started = time.time()
    try:
        while not stop.is_set():
            try:
                await services.put(key, ServiceHealth(
                    service=bus.service, instance=instance, host=host, pid=os.getpid(),
                    started_at=started, seen_at=time.time(), reconnects=bus.reconnects,
                    problems=bus.problems))
            except Exception as exc:  # a missed beat is no reason to stop the service
                logging.getLogger(bus.service).debug("heartbeat failed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(services.delete(key), 2.0)


async def every(
    interval_s: float,
    stop: asyncio.Event,
    step: Callable[[], Awaitable[None]],
    log: logging.Logger,
    wake: asyncio.Event | None = None,
) -> None:
    """Call `step` every `interval_s` (or sooner when `wake` is set) until `stop` is set.

    A failing step is logged and retried on the next tick with growing delay: one bad cycle
    must never take the service down.
    """
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await step()
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            log.exception("loop step failed (%d in a row)", failures)
        delay = interval_s * min(2**failures, 30) if failures else interval_s
        delay = max(0.0, delay - (time.monotonic() - started))
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        _, pending = await asyncio.wait(
            waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if wake is not None:
            wake.clear()


async def keep_running(
    what: str, stop: asyncio.Event, run: Callable[[asyncio.Event], Awaitable[None]],
    log: logging.Logger,
) -> None:
    """Run `run(stop)` until `stop` is set, restarting it (after a second) if it fails: a
    consumer that dies on a bus hiccup must come back, not leave its queue unserved."""
    while not stop.is_set():
        try:
            await run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting", what)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
