"""Test helper: a provisioner worker consuming until it has settled so many intents, so a
test that expects nothing to happen knows the worker got past the point where it would have
acted (not merely that some seconds went by)."""

from __future__ import annotations

import asyncio

from bus.schemas import Intent
from bus.workqueue import Delivery
from provisioning.worker import CloudWorker


async def settle(worker: CloudWorker, count: int, timeout: float = 60.0
                 ) -> list[Delivery[Intent]]:
    """Let `worker` consume its cloud's intents until `count` deliveries were settled
    (acked, naked or terminated), then stop it; those deliveries, in the order they were
    settled. AssertionError if fewer were settled within `timeout` s."""
    settled: list[Delivery[Intent]] = []
    enough = asyncio.Event()
    apply = worker.apply

    async def counted(delivery: Delivery[Intent]) -> None:
        await apply(delivery)
        if delivery.outcome:
            settled.append(delivery)
            if len(settled) >= count:
                enough.set()

    worker.apply = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.consume(stop))
    try:
        await asyncio.wait_for(enough.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"{worker.cloud}: {len(settled)} of {count} intent(s) settled "
                             f"within {timeout:.0f}s") from None
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        del worker.apply
    return settled
