"""Anomaly detectors: read finished connections (FlowRecord + its ConnectionFacts), emit findings.

    detectors = DetectorSet(thresholds)        # thresholds: Thresholds (detectors/thresholds.py)
    auditor.add_flow_sink(detectors.on_flow)   # called once per finished connection, BEFORE the flow row
                                               # is written; appends per-connection kinds to
                                               # record.facts.anomalies
    findings = detectors.finish()              # list[Finding], after the last flow
    ANOMALY_COLUMNS                            # stable column order of the anomalies report
    finding_row(finding) -> dict               # one report row (times ISO 8601 UTC)
    SEVERITIES = ("info", "warning", "critical")

`DetectorSet.attach(auditor, thresholds)` creates a set and registers it as the auditor's first flow
sink. A connection still open at the end of the capture is finalised at the capture's last packet,
which may be long after the connection's own last packet: the record's `finalised_at` says when, and
the CLOSE_WAIT and missing-third-ACK waits are measured up to it.

Findings about one server ip:port are aggregated: ONE row per (kind, server ip:port), with the
number of connections in `count`; `client_ip`/`client_port` are filled only when every connection of
the row came from that one client / port. Memory is bounded: counters per server (at most
`max_tracked_servers`), bounded source sets, and TIME_WAIT heaps that hold only the TIME_WAIT
sockets alive at the moment.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Final

from ..connection import FlowRecord
from ..decode import format_ip
from ..report import iso_utc
from .rules import RULES, Hit, ordinary
from .thresholds import LINUX_EPHEMERAL_PORTS, Thresholds

__all__ = [
    "ANOMALY_COLUMNS", "KINDS", "SEVERITIES", "DetectorSet", "Finding", "Thresholds", "finding_row",
    "LINUX_EPHEMERAL_PORTS",
]

SEVERITIES = ("info", "warning", "critical")
ANOMALY_COLUMNS = ("kind", "severity", "first_seen", "last_seen", "client_ip", "client_port",
                   "server_ip", "server_port", "count", "detail")
KINDS = (
    "missing_third_ack", "handshake_reset", "stuck_close_wait", "excess_time_wait", "syn_flood",
    "connection_refused", "syn_timeout", "rst_abort", "fin_retransmit", "bad_handshake_ack",
    "syn_during_time_wait", "data_after_close", "half_open_peer", "zero_window_stall",
)
_SEVERITY_RANK: Final = {s: i for i, s in enumerate(SEVERITIES)}
_CLIENT_SET_CAP: Final = 1024


@dataclass(slots=True)
class Finding:
    kind: str
    severity: str            # info / warning / critical
    first_seen: float        # epoch seconds
    last_seen: float
    client_ip: str           # "" when the finding is about many clients
    client_port: int | None  # None when about many connections/clients
    server_ip: str
    server_port: int
    count: int               # connections (or packets, see docs/anomalies.md) involved
    detail: str              # one human sentence with the numbers


def finding_row(f: Finding) -> dict[str, Any]:
    """One anomalies-report row in ANOMALY_COLUMNS order (times ISO 8601 UTC)."""
    return {
        "kind": f.kind,
        "severity": f.severity,
        "first_seen": iso_utc(f.first_seen),
        "last_seen": iso_utc(f.last_seen),
        "client_ip": f.client_ip,
        "client_port": f.client_port,
        "server_ip": f.server_ip,
        "server_port": f.server_port,
        "count": f.count,
        "detail": f.detail,
    }


# ---------------------------------------------------------------------------------- helpers
class _Window:
    """Events per sliding window (10 sub-buckets): bounded memory, tolerant of slight disorder."""

    __slots__ = ("width", "buckets", "peak", "peak_ts")

    def __init__(self, window_s: float) -> None:
        self.width = max(window_s, 1e-6) / 10.0
        self.buckets: dict[int, list[float]] = {}   # bucket index -> [events, earliest event time]
        self.peak = 0
        self.peak_ts = 0.0

    def add(self, ts: float) -> int:
        """Count one event; return the events in the window ending at its bucket."""
        idx = math.floor(ts / self.width)
        buckets = self.buckets
        bucket = buckets.get(idx)
        if bucket is None:
            buckets[idx] = [1, ts]
        else:
            bucket[0] += 1
            if ts < bucket[1]:
                bucket[1] = ts
        counted = 0.0
        for i in range(idx - 9, idx + 1):
            b = buckets.get(i)
            if b is not None:
                counted += b[0]
        total = int(counted)
        if total > self.peak:
            self.peak = total
            self.peak_ts = ts
        if len(buckets) > 64:
            for k in [k for k in buckets if k < idx - 20]:
                del buckets[k]
        return total

    def window_start(self, ts: float) -> float:
        """Earliest event time in the window ending at ts's bucket."""
        idx = math.floor(ts / self.width)
        for i in range(idx - 9, idx + 1):
            b = self.buckets.get(i)
            if b is not None:
                return b[1]
        return ts


class _Agg:
    """One (kind, server ip:port) row in the making."""

    __slots__ = ("kind", "count", "first", "last", "client_ip", "clients", "clients_capped", "client_port",
                 "many_ports", "detail", "packets", "value_max", "value_sum", "sides", "escalated")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.first = math.inf
        self.last = -math.inf
        self.client_ip: bytes | None = None
        self.clients: set[bytes] = set()
        self.clients_capped = False
        self.client_port: int | None = None
        self.many_ports = False
        self.detail = ""
        self.packets = 0
        self.value_max = 0.0
        self.value_sum = 0.0
        self.sides: dict[str, int] = {}
        self.escalated = 0

    def add(self, hit: Hit, record: FlowRecord) -> None:
        self.count += 1
        if self.count == 1:
            self.detail = hit.detail
            self.client_ip = record.client_ip
            self.client_port = record.client_port
        elif record.client_ip != self.client_ip or record.client_port != self.client_port:
            self.many_ports = True
        if len(self.clients) < _CLIENT_SET_CAP:
            self.clients.add(record.client_ip)
        elif record.client_ip not in self.clients:
            self.clients_capped = True
        self.first = min(self.first, hit.first)
        self.last = max(self.last, hit.last)
        self.packets += hit.packets
        self.value_max = max(self.value_max, hit.value)
        self.value_sum += hit.value
        self.sides[hit.side] = self.sides.get(hit.side, 0) + 1
        if hit.escalate:
            self.escalated += 1

    def clients_text(self) -> str:
        if len(self.clients) == 1:
            return "from " + format_ip(next(iter(self.clients)))
        return "from %s%d clients" % (">=" if self.clients_capped else "", len(self.clients))

    def sides_text(self) -> str:
        return ", ".join("%s %d" % (s, n) for s, n in sorted(self.sides.items(), key=lambda x: -x[1]))


class _Server:
    """Counters for one server ip:port (SYN flood, refusals, closes, TIME_WAIT)."""

    __slots__ = ("syns", "synacks", "acks", "half_open", "sources", "sources_capped", "flood_window",
                 "flood_first", "flood_last", "refused_window", "established",
                 "closes_client", "closes_server", "closes_both", "tw_heap", "tw_peak", "tw_peak_ts",
                 "tw_first", "tw_last", "client_tw_peak", "client_tw_peak_ip", "client_tw_peak_ts",
                 "client_tw_heaps")

    def __init__(self, t: Thresholds) -> None:
        self.syns = self.synacks = self.acks = self.half_open = 0
        self.sources: set[bytes] = set()
        self.sources_capped = False
        self.flood_window = _Window(t.syn_flood_window_s)
        self.flood_first: float | None = None
        self.flood_last = 0.0
        self.refused_window: _Window | None = None
        self.established = 0
        self.closes_client = self.closes_server = self.closes_both = 0
        self.tw_heap: list[float] = []          # TIME_WAIT expiry times of the server's sockets
        self.tw_peak = 0
        self.tw_peak_ts = 0.0
        self.tw_first = math.inf
        self.tw_last = -math.inf
        self.client_tw_peak = 0
        self.client_tw_peak_ip: bytes | None = None
        self.client_tw_peak_ts = 0.0
        self.client_tw_heaps: dict[bytes, list[float]] = {}   # per client ip: its TIME_WAIT expiries


def _tw_push(heap: list[float], start: float, until: float) -> int:
    """Add one TIME_WAIT interval; return how many are alive at its start (including it)."""
    while heap and heap[0] <= start:
        heapq.heappop(heap)
    heapq.heappush(heap, until)
    return len(heap)


def _severity_max(a: str, b: str) -> str:
    return a if _SEVERITY_RANK[a] >= _SEVERITY_RANK[b] else b


# ---------------------------------------------------------------------------------- the set
class DetectorSet:
    """All detectors; a flow sink (`on_flow`) that returns its findings at `finish()`."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.aggs: dict[tuple[str, bytes, int], _Agg] = {}
        self.servers: dict[tuple[bytes, int], _Server] = {}
        self.dropped_keys = 0          # flows of servers past max_tracked_servers (not aggregated)
        self.flows = 0
        self.latest = -math.inf        # latest packet time seen in any flow
        self._next_purge = 4096
        # the client TIME_WAIT entries by the second they end in: (server, client ip) of the heap that got
        # each (so that _purge visits only the client heaps that hold an expired entry)
        self._client_tw_ends: dict[int, list[tuple[_Server, bytes]]] = {}

    @classmethod
    def attach(cls, auditor: Any, thresholds: Thresholds | None = None) -> DetectorSet:
        """Create a set and register it as the auditor's first flow sink (it tags records before rows are written)."""
        detectors = cls(thresholds)
        auditor.flow_sinks.insert(0, detectors.on_flow)
        return detectors

    # ------------------------------------------------------------------ per flow
    def _obs_end(self, r: FlowRecord) -> float:
        f = r.facts
        return max(r.end, f.client_last_ts, f.server_last_ts, r.finalised_at)

    def on_flow(self, r: FlowRecord) -> None:
        t = self.thresholds
        self.flows += 1
        if r.end > self.latest:
            self.latest = r.end
        skey = (r.server_ip, r.server_port)
        server = self.servers.get(skey)
        if server is None:
            if len(self.servers) < t.max_tracked_servers:
                server = self.servers[skey] = _Server(t)
            else:
                self.dropped_keys += 1
        if not ordinary(r, t):   # (an ordinary connection, most of them, gets no hit from any rule)
            self._rules(r, server)
        if server is None:
            return
        self._flood(server, r)
        self._closes(server, r)
        if self.flows >= self._next_purge:
            self._purge()

    def _rules(self, r: FlowRecord, server: _Server | None) -> None:
        """Run every rule on the connection: tag it with the kinds that hit, aggregate them by server."""
        t = self.thresholds
        obs_end = self._obs_end(r)
        hits = []
        for rule in RULES:
            hit = rule(r, obs_end, t)
            if hit is not None:
                hits.append(hit)
                r.facts.anomalies.append(hit.kind)
        if server is None:
            return
        for hit in hits:
            akey = (hit.kind, r.server_ip, r.server_port)
            agg = self.aggs.get(akey)
            if agg is None:
                agg = self.aggs[akey] = _Agg(hit.kind)
            agg.add(hit, r)
            if hit.kind == "connection_refused":
                if server.refused_window is None:
                    server.refused_window = _Window(t.refused_window_s)
                server.refused_window.add(hit.first)

    def _flood(self, server: _Server, r: FlowRecord) -> None:
        f = r.facts
        if f.syn_ts is None:
            return
        server.syns += 1 + f.syn_retransmits
        if f.synack_ts is not None:
            server.synacks += 1 + f.synack_retransmits
        if f.handshake_done_ts is not None:
            server.acks += 1
            server.established += 1
            return
        refused = f.synack_ts is None and f.server_rst_ts is not None
        if refused or f.client_payload_packets:
            return
        server.half_open += 1
        if len(server.sources) < self.thresholds.max_tracked_sources:
            server.sources.add(r.client_ip)
        elif r.client_ip not in server.sources:
            server.sources_capped = True
        rate = server.flood_window.add(f.syn_ts)
        if rate >= self.thresholds.syn_flood_rate:
            if server.flood_first is None:
                server.flood_first = server.flood_window.window_start(f.syn_ts)
            server.flood_last = max(server.flood_last, f.syn_ts)
            f.anomalies.append("syn_flood")

    def _closes(self, server: _Server, r: FlowRecord) -> None:
        f = r.facts
        if r.close_initiator == "client":
            server.closes_client += 1
        elif r.close_initiator == "server":
            server.closes_server += 1
        elif r.close_initiator == "both":
            server.closes_both += 1
        # TIME_WAIT starts at the later FIN (at the connection's end if neither side sent one)
        start = r.end
        if f.client_fin_ts is not None:
            start = f.client_fin_ts
            if f.server_fin_ts is not None and f.server_fin_ts > start:
                start = f.server_fin_ts
        elif f.server_fin_ts is not None:
            start = f.server_fin_ts
        until = r.server_time_wait_until
        if until is not None and until > start:
            n = _tw_push(server.tw_heap, start, until)
            if n > server.tw_peak:
                server.tw_peak, server.tw_peak_ts = n, start
            server.tw_first = min(server.tw_first, start)
            server.tw_last = max(server.tw_last, start)
        until = r.client_time_wait_until
        if until is not None and until > start:
            heap = server.client_tw_heaps.get(r.client_ip)
            if heap is None:
                heap = server.client_tw_heaps[r.client_ip] = []
            n = _tw_push(heap, start, until)
            if n > server.client_tw_peak:
                server.client_tw_peak, server.client_tw_peak_ip, server.client_tw_peak_ts = n, r.client_ip, start
            second = math.floor(until)
            ends = self._client_tw_ends.get(second)
            if ends is None:
                ends = self._client_tw_ends[second] = []
            ends.append((server, r.client_ip))
            server.tw_first = min(server.tw_first, start)
            server.tw_last = max(server.tw_last, start)

    def _purge(self) -> None:
        """Drop expired TIME_WAIT entries (memory bound); a little slack for out-of-order flows."""
        self._next_purge = self.flows + 4096
        horizon = self.latest - 10.0
        for server in self.servers.values():
            heap = server.tw_heap
            while heap and heap[0] <= horizon:
                heapq.heappop(heap)
        # Every client heap holding an entry that ends by the horizon is listed under a second up to it
        # (a second wholly past is done with: its entries are all popped now, or were popped before).
        for second in [second for second in self._client_tw_ends if second <= horizon]:
            ends = self._client_tw_ends[second]
            if second + 1 <= horizon:
                del self._client_tw_ends[second]
            for server, ip in ends:
                client_heap = server.client_tw_heaps.get(ip)
                if client_heap is not None:
                    while client_heap and client_heap[0] <= horizon:
                        heapq.heappop(client_heap)
                    if not client_heap:
                        del server.client_tw_heaps[ip]

    # ------------------------------------------------------------------ findings
    def finish(self) -> list[Finding]:
        t = self.thresholds
        findings: list[Finding] = []
        for (_kind, ip, port), agg in self.aggs.items():
            server = self.servers.get((ip, port))
            findings.append(self._agg_finding(agg, ip, port, server))
        for (ip, port), server in self.servers.items():
            flood = self._flood_finding(server, ip, port)
            if flood is not None:
                findings.append(flood)
            tw = self._time_wait_finding(server, ip, port)
            if tw is not None:
                findings.append(tw)
        findings.sort(key=lambda x: (-_SEVERITY_RANK[x.severity], x.first_seen, x.kind, x.server_ip, x.server_port))
        del t
        return findings

    def _agg_finding(self, agg: _Agg, ip: bytes, port: int, server: _Server | None) -> Finding:
        t = self.thresholds
        kind, n = agg.kind, agg.count
        severity = "info"
        if kind in ("missing_third_ack", "syn_timeout", "bad_handshake_ack", "half_open_peer", "zero_window_stall"):
            severity = "warning"
        elif kind == "stuck_close_wait":
            severity = "critical" if n >= t.close_wait_critical_count else "warning"
        elif kind == "handshake_reset":
            severity = "warning" if n >= t.handshake_reset_warn_count else "info"
        elif kind == "connection_refused":
            peak = server.refused_window.peak if server is not None and server.refused_window else n
            severity = "warning" if peak >= t.refused_storm_count else "info"
        elif kind == "rst_abort":
            established = server.established if server is not None else n
            if n >= t.rst_abort_warn_count and n >= t.rst_abort_warn_fraction * max(established, 1):
                severity = "warning"
        elif kind == "fin_retransmit":
            severity = "warning" if n >= t.fin_retransmit_warn_count else "info"
        elif kind == "syn_during_time_wait":
            severity = "warning" if n >= t.syn_in_time_wait_warn_count else "info"
        elif kind == "data_after_close":
            severity = "warning" if agg.escalated else "info"
        one_client = len(agg.clients) == 1 and not agg.clients_capped
        detail = agg.detail if n == 1 else self._agg_detail(agg, server)
        return Finding(kind, severity, agg.first, agg.last,
                       format_ip(agg.client_ip) if one_client and agg.client_ip is not None else "",
                       agg.client_port if n == 1 else None,
                       format_ip(ip), port, n, detail)

    def _agg_detail(self, agg: _Agg, server: _Server | None) -> str:
        t = self.thresholds
        n, who, kind = agg.count, agg.clients_text(), agg.kind
        span = agg.last - agg.first
        if kind == "missing_third_ack":
            return ("%d connections %s over %.1f s: valid SYN-ACK sent, the client never sent the final ACK; "
                    "SYN-ACK retransmitted %d times in all (at most %d on one connection)" % (
                        n, who, span, agg.packets - n, int(agg.value_max)))
        if kind == "handshake_reset":
            return ("%d connections %s over %.1f s: the client answered the SYN-ACK with RST (backscatter of "
                    "spoofed SYNs carrying these sources)" % (n, who, span))
        if kind == "stuck_close_wait":
            return ("%d connections %s left in CLOSE_WAIT (holder: %s) for up to %.1f s: the peer's FIN was "
                    "acknowledged and no FIN followed; a descriptor leak in the application" % (
                        n, who, agg.sides_text(), agg.value_max))
        if kind == "connection_refused":
            peak = server.refused_window.peak if server is not None and server.refused_window else n
            return ("%d connection attempts %s refused with RST over %.1f s (peak %d in %.0f s): nothing "
                    "listening on the port" % (n, who, span, peak, t.refused_window_s))
        if kind == "syn_timeout":
            return ("%d connection attempts %s over %.1f s got no reply at all; SYN retransmitted %d times in "
                    "all (at most %d on one connection)" % (n, who, span, agg.packets - n, int(agg.value_max)))
        if kind == "rst_abort":
            est = server.established if server is not None else n
            return ("%d of %d established connections %s ended with a RST (sent by: %s), over %.1f s" % (
                n, est, who, agg.sides_text(), span))
        if kind == "fin_retransmit":
            return ("%d connections %s retransmitted a FIN (%d retransmissions in all; by: %s): ACKs of FINs "
                    "were lost" % (n, who, int(agg.value_sum), agg.sides_text()))
        if kind == "bad_handshake_ack":
            return ("%d connections %s had a handshake ACK acknowledging the wrong sequence number (%d "
                    "segments; sent by: %s)" % (n, who, agg.packets, agg.sides_text()))
        if kind == "syn_during_time_wait":
            return ("%d new SYNs %s arrived on 4-tuples still in TIME_WAIT over %.1f s: clients reuse ports "
                    "faster than 2*MSL (TIME_WAIT held by, in the previous connections: %s)" % (
                        n, who, span, agg.sides_text()))
        if kind == "data_after_close":
            return ("%d connections %s carried %d data segments after a FIN or RST (sent by: %s)" % (
                n, who, int(agg.value_sum), agg.sides_text()))
        if kind == "half_open_peer":
            return ("%d connections %s: one side kept sending for up to %.1f s with the other silent, %d "
                    "segments unanswered in all (prober: %s)" % (n, who, agg.value_max, agg.packets,
                                                                 agg.sides_text()))
        if kind == "zero_window_stall":
            return ("%d connections %s stalled on a zero receive window for up to %.1f s (receiver: %s)" % (
                n, who, agg.value_max, agg.sides_text()))
        return "%d connections %s" % (n, who)

    def _flood_finding(self, s: _Server, ip: bytes, port: int) -> Finding | None:
        t = self.thresholds
        if s.flood_first is None:
            return None
        sources = "%s%d" % (">=" if s.sources_capped else "", len(s.sources))
        duration = max(0.0, s.flood_last - s.flood_first)
        detail = ("peak %d half-open connections in %.3g s at %s; %d half-open attempts in all from %s sources "
                  "over %.1f s of flood; SYN : SYN-ACK : ACK = %d : %d : %d (%d handshakes completed)" % (
                      s.flood_window.peak, t.syn_flood_window_s, iso_utc(s.flood_window.peak_ts), s.half_open,
                      sources, duration, s.syns, s.synacks, s.acks, s.acks))
        return Finding("syn_flood", "critical", s.flood_first, s.flood_last, "", None, format_ip(ip), port,
                       s.half_open, detail)

    def _time_wait_finding(self, s: _Server, ip: bytes, port: int) -> Finding | None:
        t = self.thresholds
        closes = s.closes_client + s.closes_server + s.closes_both
        ports = max(t.ephemeral_ports, 1)
        client_frac = s.client_tw_peak / ports
        server_share = (s.closes_server + s.closes_both) / closes if closes else 0.0
        severity = None
        reasons = []
        if client_frac >= t.ephemeral_critical_fraction:
            severity = "critical"
        elif client_frac >= t.ephemeral_warn_fraction:
            severity = "warning"
        if severity is not None:
            reasons.append("client %s held %d TIME_WAIT sockets towards this service (peak at %s), %.1f%% of "
                           "the %d ephemeral ports: new connect()s will fail with EADDRNOTAVAIL" % (
                               format_ip(s.client_tw_peak_ip or b""), s.client_tw_peak,
                               iso_utc(s.client_tw_peak_ts), 100.0 * client_frac, ports))
        server_side = server_share >= t.server_active_close_fraction and closes >= t.server_active_close_min
        if server_side:
            severity = _severity_max(severity or "warning", "warning")
            reasons.append("the server closed first on %d of %d connections (%.0f%%): server-side TIME_WAIT "
                           "accumulates (peak %d at %s)" % (
                               s.closes_server + s.closes_both, closes, 100.0 * server_share, s.tw_peak,
                               iso_utc(s.tw_peak_ts) if s.tw_peak else "-"))
        if severity is None:
            if max(s.tw_peak, s.client_tw_peak) < t.time_wait_info_peak:
                return None
            severity = "info"
        if not reasons:
            if s.client_tw_peak >= s.tw_peak:
                reasons.append("peak %d client-side TIME_WAIT sockets (client %s, at %s), %.1f%% of the %d "
                               "ephemeral ports" % (s.client_tw_peak, format_ip(s.client_tw_peak_ip or b""),
                                                    iso_utc(s.client_tw_peak_ts), 100.0 * client_frac, ports))
            else:
                reasons.append("peak %d server-side TIME_WAIT sockets at %s" % (s.tw_peak, iso_utc(s.tw_peak_ts)))
        closers = "active closer: client %d, server %d, both %d of %d closed connections" % (
            s.closes_client, s.closes_server, s.closes_both, closes)
        client_side = s.client_tw_peak >= s.tw_peak and not server_side
        count = s.client_tw_peak if client_side else s.tw_peak
        client_ip = format_ip(s.client_tw_peak_ip) if client_side and s.client_tw_peak_ip else ""
        return Finding("excess_time_wait", severity, s.tw_first, s.tw_last, client_ip, None, format_ip(ip), port,
                       count, "; ".join(reasons) + "; " + closers)
