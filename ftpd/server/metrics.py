"""The Prometheus metrics of a running server (`[metrics] listen`).

Imported only when metrics are on (see reports.metrics_for). The counters
live in the parent, in a private CollectorRegistry: what the parent decides
itself (sessions admitted and refused, reloads) it counts directly; what a
session sees (transfers, bytes, failed logins) arrives as records on the
report channel (reports.py) and is counted as the loop drains them. Both
session models report the same way, so the numbers mean the same in each.

Session processes (fork mode) are measured at scrape time with psutil and
summed, not labelled by pid: a label per pid would make a new time series
for every session ever served, which Prometheus warns against (unbounded
cardinality); the sums and the count answer "what do the sessions cost".
CPU is a true counter: the reaped sessions' time (getrusage of the
children) plus the live ones'. The parent's own process_* metrics come
from prometheus_client's ProcessCollector (in thread mode, the sessions'
cost is in there).
"""

from __future__ import annotations

import logging
import resource
import selectors
import socket
from typing import Dict, Iterator, List, Optional

import prometheus_client
import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ftpd.config import Address, Config
from ftpd.server import listeners
from ftpd.server.reports import BACKLOG, Refusal, ReportChannel, ServerMetrics
from ftpd.server.scrape import Endpoint
from ftpd.server.spawn import ForkSpawner, Spawner

log = logging.getLogger("ftpd.server")

VERBS = ("G", "P", "C", "M", "D", "R")
RESULTS = ("ok", "failed")
REFUSAL_LABELS = tuple(reason.label for reason in Refusal)
MAX_MEASURED = 1000         # session processes read per scrape (psutil, /proc)

# The *_created series (a timestamp per counter) only double the output; the
# switch is process-wide, and this process is ours. (prometheus_client >= 0.17.)
getattr(prometheus_client, "disable_created_metrics", lambda: None)()


class Metrics(ServerMetrics):
    def __init__(self, config: Config, spawner: Spawner,
                 bound: Optional[Dict[Address, List[socket.socket]]] = None,
                 inherited: bool = False):
        super().__init__()
        # From systemd (ftpd-metrics.socket): its ListenStream= decides, for good.
        self.inherited = inherited and bool(bound)
        listen = next(iter(bound)) if bound and self.inherited else config.metrics.listen
        assert listen is not None
        self.listen: Address = listen
        self.sockets = _sockets(bound) if bound else _bind(self.listen)
        self.endpoint: Optional[Endpoint] = None
        self.channel = ReportChannel()
        self.sink = self.channel.send
        self.registry = CollectorRegistry()
        self._define(spawner)

    def _define(self, spawner: Spawner) -> None:
        reg = self.registry
        Gauge("ftpd_sessions", "Sessions being served now.", registry=reg) \
            .set_function(lambda: len(spawner))
        self.started = Counter("ftpd_sessions_started", "Sessions started.", registry=reg)
        self.refusals = Counter("ftpd_sessions_refused", "Clients refused, by reason.",
                                ["reason"], registry=reg)
        self.transfers = Counter("ftpd_transfers", "Transfers (G, P, C) and changes "
                                 "(M, D, R) ended, by verb and result.",
                                 ["verb", "result"], registry=reg)
        self.bytes = Counter("ftpd_transfer_bytes", "File bytes received (in) and "
                             "sent (out) by sessions.", ["direction"], registry=reg)
        self.login_failures = Counter("ftpd_login_failures", "Failed logins (A).",
                                      registry=reg)
        self.reloads = Counter("ftpd_reloads", "SIGHUP reloads, by result.", ["result"],
                               registry=reg)
        for label in REFUSAL_LABELS:
            self.refusals.labels(label)
        for verb in VERBS:
            for result in RESULTS:
                self.transfers.labels(verb, result)
        for label in ("in", "out"):
            self.bytes.labels(label)
        for label in ("ok", "refused"):
            self.reloads.labels(label)
        ProcessCollector(registry=reg)
        if isinstance(spawner, ForkSpawner):
            reg.register(SessionProcesses(spawner))

    # -- the parent's hooks -------------------------------------------------------------

    def attach(self, selector: selectors.BaseSelector) -> None:
        self.endpoint = Endpoint(self.sockets, self.render, selector)
        selector.register(self.channel.reader, selectors.EVENT_READ,
                          lambda events: self.drain())
        for sock in self.sockets:
            log.info("metrics on http://%s/metrics", listeners.describe(sock))

    def session_started(self) -> None:
        self.started.inc()

    def refused(self, reason: Refusal) -> None:
        self.refusals.labels(reason.label).inc()

    def reloaded(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "refused").inc()

    def rebind(self, listen: Optional[Address]) -> None:
        if self.inherited:
            return          # [metrics] listen is ignored under ftpd-metrics.socket
        if listen is None:
            log.warning("[metrics] listen: turning metrics off needs a restart; "
                        "still serving them on %s", listeners.format_address(self.listen))
            return
        if listen == self.listen:
            return
        sockets = _bind(listen)        # BindError: the reload is refused
        if self.endpoint is not None:
            self.endpoint.listen_on(sockets)
        else:
            listeners.close_all(self.sockets)
        self.sockets, self.listen = sockets, listen
        for sock in sockets:
            log.info("metrics on http://%s/metrics", listeners.describe(sock))

    def expire(self, now: float) -> None:
        if self.endpoint is not None:
            self.endpoint.expire(now)

    def close_in_child(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close_in_child()
        listeners.close_all(self.sockets)
        self.channel.close_reader()

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        listeners.close_all(self.sockets)
        self.channel.close()

    # -- counting and answering ------------------------------------------------------------

    def drain(self) -> None:
        for record in self.channel.drain():
            if not self.count(record):
                log.debug("metrics: ignored a malformed report %r", record[:64])

    def count(self, record: bytes) -> bool:
        """One session record into the counters; False if it is not one."""
        fields = record.decode("ascii", "replace").split()
        if fields == ["L"]:
            self.login_failures.inc()
        elif len(fields) == 2 and fields[0] == "R" and fields[1] in REFUSAL_LABELS:
            self.refusals.labels(fields[1]).inc()
        elif len(fields) == 5 and fields[0] == "T" and fields[1] in VERBS \
                and fields[2] in RESULTS and fields[3].isdigit() and fields[4].isdigit():
            self.transfers.labels(fields[1], fields[2]).inc()
            self.bytes.labels("in").inc(int(fields[3]))
            self.bytes.labels("out").inc(int(fields[4]))
        else:
            return False
        return True

    def render(self) -> bytes:
        self.drain()         # what sessions reported just before the scrape counts
        return generate_latest(self.registry)


class SessionProcesses(Collector):
    """Fork mode: what the live session processes use, read at scrape time.
    Every pid in the spawner is alive or a zombie (only this loop reaps), so
    none vanishes under the reading."""

    def __init__(self, spawner: ForkSpawner):
        self.spawner = spawner

    def collect(self) -> Iterator[Metric]:
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {"user": reaped.ru_utime, "system": reaped.ru_stime}
        rss = uss = measured = 0
        for pid in list(self.spawner.children)[:MAX_MEASURED]:
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                cpu["user"] += times.user
                cpu["system"] += times.system
                memory = proc.memory_full_info()     # smaps_rollup: most of a scrape's time
                rss += memory.rss
                uss += memory.uss
                measured += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue     # a zombie has no memory left to read
        counter = CounterMetricFamily("ftpd_session_cpu_seconds", "CPU time of session "
                                      "processes, ended and live.", labels=["mode"])
        for mode, value in cpu.items():
            counter.add_metric([mode], value)
        yield counter
        yield GaugeMetricFamily("ftpd_session_processes", "Live session processes "
                                "measured.", value=measured)
        yield GaugeMetricFamily("ftpd_session_memory_rss_bytes", "Resident memory of "
                                "the live sessions, summed (shared pages counted in each).",
                                value=rss)
        yield GaugeMetricFamily("ftpd_session_memory_uss_bytes", "Memory only the live "
                                "sessions hold (USS), summed: what they cost together.",
                                value=uss)


def _sockets(bound: Dict[Address, List[socket.socket]]) -> List[socket.socket]:
    return [sock for group in bound.values() for sock in group]


def _bind(listen: Address) -> List[socket.socket]:
    return _sockets(listeners.bind_all([listen], BACKLOG))
