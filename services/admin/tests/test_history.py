"""The history: points taken from a status, read back in at most so many steps, drawn as SVG
charts and rows, and the durations `--since` and `?since=` take."""

from __future__ import annotations

import pytest

from bus import subjects
from bus.errors import ConfigError
from bus.permissions import roles
from bus.schemas import DemandClass, HistoryPoint, HistoryReply, HistoryRequest, StatusReply
from bus.tests.examples import CLOUD_STATUS, DEMAND, STATUS, VM
from services.admin import charts, history, statuspage
from services.admin.statuspage import StatusPage


def test_a_point_holds_idle_per_class_vms_per_cloud_and_state_and_new_boots() -> None:
    status = STATUS.model_copy(update={"vms": (
        VM, VM.model_copy(update={"vm_id": "old", "created_at": 1.0}),
        VM.model_copy(update={"vm_id": "bad", "state": "error", "updated_at": 4.0}))})
    point = history.take(status, status.vms, since=2.0, now=5.0)
    assert point.idle == {DEMAND.classes[0].key: 5} and point.running_jobs == 2
    assert point.labels == {DEMAND.classes[0].key: DEMAND.classes[0].vm_type}
    assert point.vms == {CLOUD_STATUS.name: dict(CLOUD_STATUS.vms_by_state)}
    assert (point.boots, point.failures) == (2, 1)  # created at 3.0 twice; one error at 4.0
    assert history.take(status, status.vms, since=5.0, now=9.0).boots == 0


def test_a_queue_of_many_classes_keeps_the_largest_by_name_and_adds_up_the_rest() -> None:
    classes = tuple(DemandClass(key=f"k{i:03d}", vm_type="t", idle=i) for i in range(50))
    status = STATUS.model_copy(update={"demand": DEMAND.model_copy(update={"classes": classes})})
    point = history.take(status, (), 0.0, 1.0)
    assert len(point.idle) == history.MAX_CLASSES + 1
    assert point.idle["k049"] == 49 and "k000" not in point.idle
    assert point.total_idle() == sum(range(50))


def points(n: int, step: float = 1.0) -> list[HistoryPoint]:
    return [HistoryPoint(at=100.0 + i * step, vms={"c": {"running": i}}, boots=1)
            for i in range(n)]


def test_downsample_keeps_every_point_that_fits_and_steps_the_rest() -> None:
    every = history.downsample(points(10), 1.0, 99.0, 110.0, 20)
    assert len(every.points) == 10 and every.step_s == 1.0
    coarse = history.downsample(points(100), 1.0, 100.0, 200.0, 10)
    assert len(coarse.points) == 10 and coarse.step_s == 10.0
    assert [p.vms_in("running") for p in coarse.points][:2] == [9, 19]  # each step's last
    assert sum(p.boots for p in coarse.points) == 100  # no boot lost to a coarser step
    assert history.downsample(points(10), 1.0, 105.0, 107.0, 20).points[0].at == 105.0


def test_durations_read_as_people_write_them() -> None:
    assert charts.parse_duration("90s") == 90
    assert charts.parse_duration("1h30m") == 5400
    assert charts.parse_duration("1d") == 86400
    for bad in ("", "1 hour", "h", "-5m", "5x"):
        with pytest.raises(ConfigError, match="is not a duration"):
            charts.parse_duration(bad)


def test_charts_draw_every_line_with_its_values_and_say_when_empty() -> None:
    reply = history.downsample(points(5), 1.0, 99.0, 105.0, 240)
    svg = charts.history_charts(reply, 99.0, 105.0)
    assert svg.count("<svg") == 3 and 'id="chart-vms"' in svg
    assert 'data-label="running" data-values="0,1,2,3,4"' in svg
    assert 'data-label="boots" data-values="1,1,1,1,1"' in svg
    empty = charts.history_charts(history.downsample([], 1.0, 0.0, 10.0, 240), 0.0, 10.0)
    assert empty.count("no history yet") == 3
    rows = charts.history_rows(reply.points)
    assert [r[3:5] for r in rows] == [[str(i), str(i)] for i in range(5)]
    assert len(rows[0]) == len(charts.HISTORY_HEADERS)


def test_only_the_admin_writes_the_history_and_a_viewer_may_ask_for_it() -> None:
    table = roles()
    writers = {name for name, role in table.items() if subjects.history() in role.publish}
    assert writers == {"admin"}
    ask = subjects.admin_endpoint(subjects.ADMIN_HISTORY)
    assert ask in table["viewer"].publish


async def test_the_page_draws_the_history_and_says_what_is_wrong_with_a_bad_since() -> None:
    asked: list[tuple[float, int]] = []

    async def status() -> StatusReply:
        return STATUS

    async def past(request: HistoryRequest) -> HistoryReply:
        asked.append((request.since_s, request.max_points))
        return history.downsample(points(3), 1.0, 0.0, 1e12, request.max_points)

    page = StatusPage(status, "site", history=past)
    code, _, body = await page._answer("GET", "/", "since=2h")
    assert code == "200 OK" and asked == [(7200.0, statuspage.CHART_POINTS)]
    assert b'data-label="all VMs" data-values="0,1,2"' in body
    code, _, body = await page._answer("GET", "/", "since=soon")
    assert code == "200 OK" and b"history: &#x27;soon&#x27; is not a duration" in body
    assert VM.vm_id.encode() in body  # the tables are there all the same
