"""Junk on the bus, against every running service: garbage, wrong types, wrong schema
versions and oversize bodies to every admin endpoint, the intent and condor-action work
queues and the snapshot subjects. Every service stays up and keeps working, every request
gets a clear error, and the dead-letter subject receives everything that was rejected."""

from __future__ import annotations

import asyncio
import shutil
import time
import zlib
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from bus import codec, subjects
from bus.connection import Bus
from bus.schemas import DeadLetter, VmEvent
from tests.demo import ROOT, site_toml
from tests.natsserver import NatsServer
from tests.system import System

pytestmark = pytest.mark.e2e

CLOUD = "container-cloud"
ENDPOINTS = (subjects.ADMIN_STATUS, subjects.ADMIN_CLOUD_ENABLE, subjects.ADMIN_CLOUD_DISABLE,
             subjects.ADMIN_VM_KILL, subjects.ADMIN_VM_DRAIN, subjects.ADMIN_CONFIG_RELOAD)


def _junk() -> list[tuple[str, bytes, dict[str, str]]]:
    """(what, body, headers): each must be refused."""
    event, event_headers = codec.encode(VmEvent(vm_id="x", cloud=CLOUD, state="gone", at=1.0))
    return [
        ("garbage", b"\xc1\xff\x00junk", {"Cs-Type": "Intent", "Cs-Schema": "1"}),
        ("no headers", b"\x80", {}),
        ("wrong type", event, event_headers),
        ("future schema", event, {**event_headers, "Cs-Schema": "99"}),
        # As large as NATS carries (its max_payload refuses larger ones at the door).
        ("oversize", b"\x00" * (codec.MAX_MESSAGE_BYTES - 4096),
         {"Cs-Type": "Intent", "Cs-Schema": "1"}),
    ]


def _bomb(cs_type: str) -> tuple[bytes, dict[str, str]]:
    """A small compressed body that would expand past the decoder's limit."""
    return zlib.compress(b"\x00" * (codec.MAX_DECODED_BYTES + 4096), 9), {
        "Cs-Type": cs_type, "Cs-Schema": "1", "Cs-Encoding": "zlib"}


async def _attack(url: str) -> tuple[dict[str, str], list[DeadLetter]]:
    """Send the junk everywhere; the admin's answers by endpoint and the dead letters."""
    bus = await Bus.connect(url, "attacker", wait_s=10)
    letters: list[DeadLetter] = []
    async def keep(msg: Msg) -> None:
        headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        letters.append(codec.decode(msg.data, headers, DeadLetter))

    sub = await bus.nc.subscribe(subjects.deadletter(), cb=keep)
    answers: dict[str, str] = {}
    try:
        for what, body, headers in _junk():
            for name in ENDPOINTS:
                reply = await bus.nc.request(subjects.admin_endpoint(name), body,
                                             headers=headers or None, timeout=10)
                code = (reply.headers or {}).get("Nats-Service-Error-Code", "")
                message = (reply.headers or {}).get("Nats-Service-Error", "")
                answers[f"{name}/{what}"] = f"{code} {message}"
            await bus.js.publish(subjects.intent(CLOUD), body, headers=headers or None)
            await bus.js.publish(subjects.condor_action(), body, headers=headers or None)
            await bus.js.publish(subjects.demand(), body, headers=headers or None)
        bomb, bomb_headers = _bomb("StatusRequest")
        reply = await bus.nc.request(subjects.admin_endpoint(subjects.ADMIN_STATUS), bomb,
                                     headers=bomb_headers, timeout=10)
        answers["status/bomb"] = (reply.headers or {}).get("Nats-Service-Error", "")
        bomb, bomb_headers = _bomb("Intent")
        await bus.js.publish(subjects.intent(CLOUD), bomb, headers=bomb_headers)
        deadline = time.monotonic() + 30
        want = {"cs-admin": len(_junk()) * len(ENDPOINTS), "cs-provisioner-libvirt":
                len(_junk()) + 1, "cs-poller": len(_junk())}
        while time.monotonic() < deadline:
            if all(sum(x.service == who for x in letters) >= n for who, n in want.items()):
                break
            await asyncio.sleep(0.2)
    finally:
        await sub.unsubscribe()
        await bus.close()
    return answers, letters


def test_services_refuse_junk_clearly_and_keep_working(
    tmp_path: Path, fresh_nats: NatsServer,
) -> None:
    shutil.copy(ROOT / "examples" / "demo-queue.txt", tmp_path / "queue.txt")
    config = tmp_path / "cs.toml"
    config.write_text(site_toml("hostile"))
    system = System(tmp_path, config, fresh_nats.url)
    system.start()
    try:
        before = system.wait_for("8 running VMs", lambda d: sum(
            v["state"] == "running" for v in d["vms"]) == 8)
        answers, letters = asyncio.run(_attack(fresh_nats.url))

        # Every request: a 400 that says what was wrong, no traceback.
        assert "expands past the" in answers.pop("status/bomb")
        assert len(answers) == len(ENDPOINTS) * len(_junk())
        for where, answer in answers.items():
            assert answer.startswith("400 bad request: "), (where, answer)
            assert "Traceback" not in answer
        assert "expected a StatusRequest message, got Intent" in answers["status/garbage"]
        assert "expected a StatusRequest message, got VmEvent" in answers["status/wrong type"]
        assert "schema version 99" in answers["vm-kill/future schema"]

        # Everything rejected reached the dead-letter subject, saying who and why.
        by_service: dict[str, int] = {}
        for letter in letters:
            by_service[letter.service] = by_service.get(letter.service, 0) + 1
            assert letter.error
        assert by_service.get("cs-admin", 0) >= len(ENDPOINTS) * len(_junk())
        assert by_service.get("cs-provisioner-libvirt", 0) >= len(_junk())
        assert by_service.get("cs-poller", 0) >= len(_junk())
        assert [x for x in letters if x.subject == subjects.intent(CLOUD)
                and "not valid msgpack" in x.error]
        assert [x for x in letters if x.subject == subjects.intent(CLOUD)
                and "expands past the" in x.error]
        assert {letter.subject for letter in letters} >= {
            subjects.intent(CLOUD), subjects.condor_action(),
            *(subjects.admin_endpoint(e) for e in ENDPOINTS)}

        # Every service is still up and doing its work: the junk demand was replaced by the
        # poller's next snapshot, and a real change still gets through.
        assert all(proc.poll() is None for proc in system.procs.values())
        doc = system.wait_for("the demand back from the poller", lambda d: bool(
            d["demand"] and d["demand"]["classes"]))
        assert {v["name"] for v in doc["vms"]} == {v["name"] for v in before["vms"]}
        assert "disabled" in system.cs("cloud", "disable", CLOUD).stdout
        system.wait_for("the flag", lambda d: d["clouds"][0]["enabled"] is False)
    finally:
        system.stop()
