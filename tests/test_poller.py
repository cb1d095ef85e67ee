"""The poller's loop on a real bus: what it publishes, and stale demand that keeps classes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bus import subjects
from bus.connection import Bus
from bus.schemas import DemandSnapshot
from services.poller.settings import PollerSettings
from services.poller.shell import Poller

ROOT = Path(__file__).resolve().parents[1]


def settings(source: str, queue: Path | None) -> PollerSettings:
    return PollerSettings(nats_url="", source=source,  # type: ignore[arg-type]
                          queue_file=queue, schedds=(), interval_s=1, query_timeout_s=20)


async def test_replay_publishes_then_goes_stale_keeping_the_classes(
    bus: Bus, tmp_path: Path
) -> None:
    queue = tmp_path / "q.txt"
    shutil.copy(ROOT / "examples" / "demo-queue.txt", queue)
    poller = Poller(bus, settings("replay", queue))
    await poller.step()
    first = await bus.last(subjects.demand(), DemandSnapshot)
    assert first is not None and not first.value.stale and len(first.value.classes) == 2
    queue.unlink()
    await poller.step()
    second = await bus.last(subjects.demand(), DemandSnapshot)
    assert second is not None and second.value.stale
    assert "cannot read queue dump" in second.value.stale_reason
    assert second.value.classes == first.value.classes  # nothing retired on a blip
    assert second.trace == first.trace  # the same demand keeps its trace id


async def test_unreachable_schedd_is_stale_demand_with_the_reason(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "CONDOR_CONFIG", "ONLY_ENV")
    await Poller(bus, settings("condor", None)).step()
    snap = await bus.last(subjects.demand(), DemandSnapshot)
    assert snap is not None and snap.value.stale and snap.value.source == "none"
    assert snap.value.stale_reason.startswith("schedd query failed:")
