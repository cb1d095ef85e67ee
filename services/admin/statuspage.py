"""The read-only status page the admin service serves ([admin] status_page = "host:port"):
clouds, VMs, services, demand and the planner's reasons, refreshing itself every few seconds;
`/status.json` is `cs status --json`. GET only; nothing on it changes anything.

A small HTTP/1.1 server on asyncio (one request per connection): the page is a handful of
tables, not worth a web framework in every installation.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from bus.errors import AdminError, ConfigError
from bus.metrics import Metrics
from bus.schemas import (
    HistoryReply,
    HistoryRequest,
    PoolSnapshot,
    Startd,
    StatusReply,
    VmListReply,
    VmListRequest,
    VmRecord,
)
from services.admin import charts, views
from services.admin.history import StatusSource
from siteconfig import SiteConfig

log = logging.getLogger("cs-admin")

REFRESH_S = 5
CHART_POINTS = 240
"""Points per chart line: finer than the page is wide enough to show."""
HistorySource = Callable[[HistoryRequest], Awaitable[HistoryReply]]
"""The history of the last so many seconds in at most so many points."""
VmPageSource = Callable[[VmListRequest], Awaitable[VmListReply]]
"""One page of the registry."""
PAGE_VMS = 500
"""VMs on one page of the status page's listing."""
VM_PAGE_READ = 5000
"""VMs read a page at a time for `/status.json`."""
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1d232a; background: #fafbfc; }
h1 { font-size: 1.4em; margin: 0 0 .2em 0; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em 0; }
table { border-collapse: collapse; font-size: .9em; background: white; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: left; }
th { background: #eef1f4; } .muted { color: #57606a; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; }
.running { background: #dafbe1; } .error { background: #ffebe9; }
.booting, .requested { background: #fff8c5; }
.charts { display: flex; flex-wrap: wrap; gap: .8em; }
.chart { background: white; border: 1px solid #d0d7de; }
.chart .grid { stroke: #eef1f4; } .chart .tick, .chart .legend { font-size: 11px; fill: #57606a; }
.chart .chart-title { font-size: 13px; font-weight: 600; fill: #1d232a; }
"""


def _table(headers: list[str], rows: list[list[str]], row_class: list[str] | None = None,
           table_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{html.escape(row_class[i])}"' if row_class else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f'<table id="{table_id}"><tr>{head}</tr>{"".join(body)}</table>'


def _vm_rows(status: StatusReply) -> tuple[list[list[str]], list[str]]:
    startds = views.startd_states(status)
    return ([[v.vm_id, v.cloud, v.spec.vm_type, v.state, startds.get(v.vm_id, "-"),
              v.reason or ""] for v in status.vms], [v.state for v in status.vms])


VM_HEADERS = ["VM", "cloud", "type", "state", "startd", "reason"]


def _vm_page(page: VmListReply, after: str, query: dict[str, list[str]]) -> str:
    """One page of every VM, with a link to the next."""
    rows, states = _vm_rows(StatusReply(vms=page.vms, pool=PoolSnapshot(
        source="", taken_at=0.0, startds=page.startds)))
    where = f" after {html.escape(after)}" if after else ""
    links = []
    if after:
        links.append(f'<a href="/?{html.escape(_query(query, after=""))}">first page</a>')
    if page.next_after:
        links.append(f'<a id="next" href="/?{html.escape(_query(query, after=page.next_after))}"'
                     f">next {PAGE_VMS}</a>")
    nav = f'<p class="muted">{" · ".join(links)}</p>' if links else ""
    return (f"<h2>VMs ({page.total}; {len(page.vms)} shown{where})</h2>"
            + _table(VM_HEADERS, rows, states, table_id="vms") + nav)


def _query(query: dict[str, list[str]], **changes: str) -> str:
    merged = {k: v[-1] for k, v in query.items()}
    merged.update(changes)
    return urllib.parse.urlencode({k: v for k, v in merged.items() if v})


def render(status: StatusReply, now: float, site: str, charts: str = "",
           listing: str = "") -> str:
    """The whole page for one status (with the history's charts and a page of every VM,
    drawn already)."""
    clouds = _table(
        ["cloud", "provider", "enabled", "max VMs", "VMs by state", "health"],
        [[c.name, c.provider, "yes" if c.enabled else "no", str(c.max_vms),
          ", ".join(f"{s} {n}" for s, n in sorted(c.vms_by_state.items())) or "-",
          views.health_text(c.health, now)] for c in status.clouds], table_id="clouds")
    rows, states = _vm_rows(status)
    attention = _table(VM_HEADERS, rows, states, table_id="attention")
    services = _table(
        ["service", "host", "pid", "reconnects", "problems"],
        [[s.service, s.host, str(s.pid), str(s.reconnects), "; ".join(s.problems) or "-"]
         for s in status.services], table_id="services")
    parts = [f'<div class="charts">{charts}</div>' if charts else "",
             f"<h2>Clouds</h2>{clouds}",
             f"<h2>VMs needing attention ({status.attention_total} of {status.vm_total})"
             f"</h2>{attention}", listing, f"<h2>Services</h2>{services}"]
    demand = status.demand
    if demand is None:
        parts.append('<h2>Demand</h2><p class="muted">no snapshot yet (is cs-poller '
                     "running?)</p>")
    else:
        stale = (f' <span class="bad">STALE: {html.escape(demand.stale_reason)}</span>'
                 if demand.stale else "")
        parts.append(f"<h2>Demand</h2><p class=\"muted\">from {html.escape(demand.source)}"
                     f"{stale}</p>" + _table(
            ["class", "VM type", "cores", "MB", "idle", "running", "clouds"],
            [[c.key, c.vm_type, str(c.cores), str(c.memory_mb), str(c.idle), str(c.running),
              ", ".join(c.target_clouds) or "any"] for c in demand.classes],
            table_id="demand"))
        if demand.rejected:
            parts.append(f"<h2>Rejected jobs ({demand.rejected_total})</h2>" + _table(
                ["job", "reason"], [[r.job, r.reason] for r in demand.rejected],
                table_id="rejected"))
    if status.plan is not None:
        parts.append("<h2>Planner</h2>" + _table(
            ["decision", "cloud", "class", "count", "reason"],
            [[d.kind, d.cloud or "-", d.class_key or "-", str(d.count), d.reason]
             for d in status.plan.decisions], table_id="plan"))
    running = sum(v.state == "running" for v in status.vms)
    updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">"
            f"<title>cloudscheduler {html.escape(site)}: {running} running</title>"
            f"<style>{_STYLE}</style></head><body>"
            f"<h1>cloudscheduler: {html.escape(site)}</h1>"
            f"<p class=\"muted\" id=\"updated\">{updated}, refreshes every {REFRESH_S} s; "
            f"read-only (change things with <code>cs</code>)</p>"
            + "".join(parts) + "</body></html>")


class StatusPage:
    """Serves the page until closed."""

    def __init__(self, status: StatusSource, site: str, metrics: Metrics | None = None,
                 history: HistorySource | None = None, vms: VmPageSource | None = None
                 ) -> None:
        self.status = status
        self.site = site
        self.metrics = metrics
        self.history = history
        self.vms = vms
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: a free one); the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            words = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            method, path = words[0], words[1] if len(words) > 1 else "/"
            route, _, query = path.partition("?")
            status, ctype, body = await self._answer(method, route, query)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        except Exception as exc:  # the page must never take the admin service down
            log.exception("status page failed")
            status, ctype, body = "500 Internal Server Error", "text/plain", (
                f"status unavailable: {type(exc).__name__}\n".encode())
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: "
                     f"{len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                     .encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _everything(self) -> StatusReply:
        """The status with every VM (`/status.json`, the same document as `cs status
        --json`), gathered page by page."""
        status = await self.status()
        if self.vms is None:
            return status
        vms: list[VmRecord] = []
        slots: list[Startd] = []
        after = ""
        while True:
            page = await self.vms(VmListRequest(after=after, limit=VM_PAGE_READ))
            vms += page.vms
            slots += page.startds
            if not page.next_after:
                break
            after = page.next_after
        pool = status.pool.model_copy(update={"startds": tuple(slots)}) if status.pool else None
        return status.model_copy(update={"vms": tuple(vms), "pool": pool})

    async def _listing(self, query: str) -> str:
        """A page of every VM, from `?after=` (a registry key) on."""
        if self.vms is None:
            return ""
        args = urllib.parse.parse_qs(query)
        after = args.get("after", [""])[-1]
        return _vm_page(await self.vms(VmListRequest(after=after, limit=PAGE_VMS)), after, args)

    async def _charts(self, query: str, now: float) -> str:
        """The history's charts over `?since=` (default the last hour); a bad value is said
        on the page, not answered with an error."""
        if self.history is None:
            return ""
        text = urllib.parse.parse_qs(query).get("since", ["1h"])[-1]
        try:
            since_s = charts.parse_duration(text)
            reply = await self.history(HistoryRequest(since_s=since_s,
                                                      max_points=CHART_POINTS))
        except (ConfigError, AdminError) as exc:
            return f'<p class="bad">history: {html.escape(str(exc))}</p>'
        return charts.history_charts(reply, now - since_s, now)

    async def _answer(self, method: str, path: str, query: str = "") -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"read-only: GET only\n"
        if self.metrics is not None and path in ("/", "/index.html", "/status.json"):
            self.metrics.status_page_requests.labels(path).inc()
        if path == "/status.json":
            doc = views.status_json(await self._everything())
            return "200 OK", "application/json", json.dumps(doc).encode()
        if path in ("/", "/index.html"):
            now = time.time()
            page = render(await self.status(), now, self.site, await self._charts(query, now),
                          await self._listing(query))
            return "200 OK", "text/html; charset=utf-8", page.encode()
        return "404 Not Found", "text/plain", b"not found: try / or /status.json\n"


ADMIN_KEYS = frozenset({"status_page", "history_interval_s"})
"""The keys of the `[admin]` table."""


def listen_address(site: SiteConfig) -> tuple[str, int] | None:
    """`[admin] status_page = "host:port"` parsed; None when unset (no page)."""
    sec = site.section("admin")
    sec.check_keys(ADMIN_KEYS)
    text = sec.string("status_page", "")
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{site.path}: [admin] status_page = {text!r}: expected "
                          "\"host:port\", e.g. \"127.0.0.1:8080\"")
    return host or "127.0.0.1", int(port)
