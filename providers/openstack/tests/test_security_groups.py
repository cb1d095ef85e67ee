"""Which security groups a server gets: the job's, where the cloud lists them (v1's rule)."""

from __future__ import annotations

import pytest

from providers.openstack.driver import security_groups


@pytest.mark.parametrize(("asked", "allowed", "used"), [
    ((), ("default",), ("default",)),                        # none asked: the cloud's
    (("condor",), ("default", "condor"), ("condor",)),       # asked and listed: the job's
    (("condor", "default"), ("default", "condor"), ("condor", "default")),  # the job's order
    (("web",), ("default", "condor"), ("default", "condor")),  # not listed: the cloud's
    (("web", "condor"), ("default", "condor"), ("condor",)),   # only those listed
    (("web",), (), ()),                                        # the project's default
])
def test_the_jobs_groups_where_the_cloud_lists_them(
    asked: tuple[str, ...], allowed: tuple[str, ...], used: tuple[str, ...],
) -> None:
    assert security_groups(asked, allowed) == used
