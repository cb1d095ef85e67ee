"""The contract every CondorSource keeps (services/poller/source.py), run on the live pool's
bindings (`BindingsSource`) and on replays of the same pool's `condor_q`/`condor_status`
dumps (`ReplaySource`, which stands in for the schedd in the end-to-end and chaos tests): what
each reports is checked against HTCondor's own tools on that pool, not against the other.

A test module subclasses `CondorSourceContract` and gives the fixtures `source` (the source
under test) and `condor` (a callable running an HTCondor command on the pool)."""

from __future__ import annotations

import re
from collections.abc import Callable

from services.poller import pool
from services.poller.demand import JOB_IDLE, JOB_RUNNING, PROJECTION, job_id
from services.poller.source import CondorSource

Condor = Callable[..., str]
"""`condor("condor_q", "-af", ...)`: a command's output on the pool."""

REQUESTS = ("RequestCpus", "RequestMemory", "RequestDisk")
COMPARED = tuple(a for a in PROJECTION if a != "Requirements" and a not in REQUESTS)
"""Attributes whose values condor_q -af prints as they are (Requirements is an expression,
printed in each tool's own spelling; a Request* that condor_submit wrote as an expression of
the job's usage is no request and left out)."""


def printed(value: object) -> str:
    """A value as `condor_q -af` prints it."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spelled_alike(expression: str) -> str:
    """An expression with the spellings ClassAds treat alike made one: `is`/`isnt` are
    `=?=`/`=!=` (classad2 prints the first, condor_q the second), whitespace dropped."""
    expression = re.sub(r"\bisnt\b", "=!=", expression)
    return "".join(re.sub(r"\bis\b", "=?=", expression).split())


def reference_jobs(condor: Condor) -> dict[str, dict[str, str]]:
    """Every job of the pool's queue, as condor_q -af prints its attributes."""
    out = condor("condor_q", "-allusers", "-af:t", *COMPARED)
    rows = {}
    for line in out.splitlines():
        row = dict(zip(COMPARED, line.split("\t"), strict=True))
        rows[f"{row['ClusterId']}.{row['ProcId']}"] = row
    return rows


def reference_slots(condor: Condor) -> dict[str, str]:
    """The pool's slots that advertise a CS_VM_ID: slot name -> VM id."""
    out = condor("condor_status", "-constraint", f"{pool.VM_ID_ATTR} =!= undefined",
                 "-af:t", "Name", pool.VM_ID_ATTR)
    return dict(line.split("\t") for line in out.splitlines())


class CondorSourceContract:
    """Required of every CondorSource, real or replayed."""

    async def test_describe_says_where_demand_comes_from(self, source: CondorSource) -> None:
        assert source.describe().split(":", 1)[0] in ("schedd", "replay")

    async def test_jobs_are_the_idle_and_running_jobs_with_what_condor_q_says(
        self, source: CondorSource, condor: Condor,
    ) -> None:
        reference = {job: row for job, row in reference_jobs(condor).items()
                     if row["JobStatus"] in (str(JOB_IDLE), str(JOB_RUNNING))}
        assert len(reference) < len(reference_jobs(condor))  # the queue holds others too
        ads = list(await source.jobs())
        assert sorted(job_id(ad) for ad in ads) == sorted(reference)
        for ad in ads:
            assert set(ad) <= set(PROJECTION), set(ad) - set(PROJECTION)
            assert all(isinstance(v, bool | int | float | str) for v in ad.values()), ad
            row = reference[job_id(ad)]
            assert {a: printed(ad.get(a)) for a in COMPARED} == row, (ad, row)
            assert isinstance(ad.get("Requirements"), str)

    async def test_a_request_is_a_number_the_job_gave_not_condor_submits_default(
        self, source: CondorSource, condor: Condor,
    ) -> None:
        raw = condor("condor_q", "-allusers", "-af:rt", "ClusterId", "ProcId", *REQUESTS)
        expected = {}
        for line in raw.splitlines():
            cluster, proc, *values = line.split("\t")
            expected[f"{cluster}.{proc}"] = {
                attr: int(text) for attr, text in zip(REQUESTS, values, strict=True)
                if text.strip().isdigit()}
        defaulted = 0
        for ad in await source.jobs():
            asked = {attr: ad[attr] for attr in REQUESTS if attr in ad}
            assert asked == expected[job_id(ad)], (asked, expected[job_id(ad)])
            defaulted += "RequestMemory" not in ad
        assert defaulted  # the queue holds jobs that did not ask

    async def test_requirements_are_the_expression_as_the_schedd_keeps_it(
        self, source: CondorSource, condor: Condor,
    ) -> None:
        raw = condor("condor_q", "-allusers", "-af:rt", "ClusterId", "ProcId", "Requirements")
        expected = {f"{cluster}.{proc}": text for cluster, proc, text in (
            line.split("\t", 2) for line in raw.splitlines())}
        for ad in await source.jobs():
            assert spelled_alike(str(ad["Requirements"])) == spelled_alike(
                expected[job_id(ad)]), (ad["Requirements"], expected[job_id(ad)])

    async def test_startds_are_the_slots_that_advertise_our_vm_id(
        self, source: CondorSource, condor: Condor,
    ) -> None:
        slots = await source.startds()
        assert {str(s["Name"]): str(s[pool.VM_ID_ATTR]) for s in slots} == reference_slots(
            condor)
        assert all(set(s) <= set(pool.PROJECTION) for s in slots)

    async def test_retiring_a_vm_that_is_not_in_the_pool_tells_nobody(
        self, source: CondorSource,
    ) -> None:
        assert await source.retire("cs-nowhere-c1-0000000000-0") == 0
