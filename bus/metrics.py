"""Prometheus metrics: every metric any service exports, declared once, in one registry per
process (passed along on the process's `Bus`, never global), served on /metrics.

A service sets the metrics of its own job; the others stay absent (labelled families) or at
zero. Names and labels are what container/grafana-dashboard.json queries; a test checks the
dashboard against what running services export.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LOOP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The metric families of one process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        # Every service: the bus.
        self.bus_reconnects = Counter(
            "cs_bus_reconnects", "Times the NATS connection came back after an outage",
            registry=r)
        self.bus_permission_errors = Counter(
            "cs_bus_permission_errors", "Permission violations the NATS server reported",
            registry=r)
        self.dead_letters = Counter(
            "cs_dead_letters", "Messages refused and sent to cs.deadletter", ["subject"],
            registry=r)
        # Poller: demand by class.
        self.demand_jobs = Gauge(
            "cs_demand_jobs", "Jobs by demand class and state", ["vm_type", "class_key",
                                                                "state"], registry=r)
        self.demand_rejected = Gauge(
            "cs_demand_rejected_jobs", "Jobs whose VM attributes could not be read", registry=r)
        self.demand_stale = Gauge(
            "cs_demand_stale", "1 while the queue cannot be read (the last demand is kept)",
            registry=r)
        self.poll_seconds = Histogram(
            "cs_poll_seconds", "Time of one poll of queue and pool", buckets=_LOOP_BUCKETS,
            registry=r)
        # Planner: VMs by cloud and state, plans, intents, backoffs.
        self.vms = Gauge("cs_vms", "VMs in the registry by cloud and state", ["cloud", "state"],
                         registry=r)
        self.plan_seconds = Histogram(
            "cs_plan_seconds", "Time of one planning cycle (read, plan, write)",
            buckets=_LOOP_BUCKETS, registry=r)
        self.intents = Counter("cs_intents", "Intents published", ["cloud", "action"],
                               registry=r)
        self.intent_lag = Histogram(
            "cs_intent_lag_seconds", "From the demand snapshot that caused a boot to its intent "
            "on the bus", buckets=_LAG_BUCKETS, registry=r)
        self.cloud_backoff = Gauge(
            "cs_cloud_backoff", "1 while a cloud is backed off after boot failures", ["cloud"],
            registry=r)
        self.holds = Gauge("cs_plan_holds", "VMs wanted but not booted, by reason kind",
                           ["cloud", "reason"], registry=r)
        # Provisioners: what the clouds did.
        self.boots = Counter("cs_boots", "Boot intents applied, by outcome",
                             ["cloud", "outcome"], registry=r)
        self.boot_failures = Counter(
            "cs_boot_failures", "Boots that failed, by error kind", ["cloud", "kind"],
            registry=r)
        self.retries = Counter("cs_intent_retries", "Intents put back for a retry (backoff)",
                               ["cloud", "action"], registry=r)
        self.deletes = Counter("cs_deletes", "Kill intents applied", ["cloud"], registry=r)
        self.orphans_deleted = Counter(
            "cs_orphans_deleted", "VMs of ours the registry did not know, deleted",
            ["cloud"], registry=r)
        self.reconcile_seconds = Histogram(
            "cs_reconcile_seconds", "Time of one reconcile of a cloud", ["cloud"],
            buckets=_LOOP_BUCKETS, registry=r)
        # Admin: requests, and loads of its status page.
        self.status_page_requests = Counter(
            "cs_status_page_requests", "Pages and JSON served by the status page", ["path"],
            registry=r)
        self.admin_requests = Counter(
            "cs_admin_requests", "Admin requests answered, by endpoint and code",
            ["endpoint", "code"], registry=r)

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics on host:port in a thread of this process (port 0: off)."""
        if port:
            start_http_server(port, addr=host, registry=self.registry)
