"""`excess_time_wait`: a TIME_WAIT population, judged by its size against the limit it can hit.

**TCP:** the active closer (the first to send a FIN) ends in TIME_WAIT for 2*MSL (Linux: 60 s). A
client in TIME_WAIT keeps its ephemeral port towards that server ip:port busy; a server keeps one
TIME_WAIT socket per connection it closed first (a few hundred bytes of kernel memory each, up to
`net.ipv4.tcp_max_tw_buckets` per network namespace; past it the kernel skips TIME_WAIT, logging
"time wait bucket table overflow").

**Rule:** each connection's entry into TIME_WAIT lasts 2*MSL; the populations are counted exactly
from those intervals: per client towards each server ip:port, per server ip:port, and per server
address over all its ports. Severity:
* critical / warning when one client's peak towards the server ip:port reaches
  `ephemeral_critical_fraction` / `ephemeral_warn_fraction` of `ephemeral_ports` (connect() fails
  with EADDRNOTAVAIL when none is left);
* critical / warning when the server address's peak over all its ports reaches
  `time_wait_buckets_critical_fraction` / `time_wait_buckets_warn_fraction` of `time_wait_buckets`;
* info, with its numbers, when the server closed first on at least `server_active_close_fraction`
  of at least `server_active_close_min` connections (the pattern alone does no harm), or when a peak
  reached `time_wait_info_peak`; nothing below that.
`count` is the peak TIME_WAIT count the row is about.
"""

from __future__ import annotations

import math
from typing import Any, Final

from ...connection import FlowRecord
from ...decode import format_ip
from ...report import iso_utc
from ..base import EVERY_FLOW, Context, Detector, EventTimes, Finding, Setting, fold_times, grow, severity_max

KIND: Final = "excess_time_wait"
ORDER: Final = 140

#: Linux net.ipv4.ip_local_port_range default 32768-60999: the ports one client can use to one server ip:port.
LINUX_EPHEMERAL_PORTS: Final = 60999 - 32768 + 1  # 28232

SETTINGS: Final = (
    Setting(
        "time_wait_info_peak",
        100,
        "report (info) a server ip:port whose TIME_WAIT population reaches this peak: far below the limits "
        "below, harmless but worth showing",
    ),
    Setting(
        "ephemeral_ports",
        LINUX_EPHEMERAL_PORTS,
        "Linux ip_local_port_range 32768-60999: 28232 ports from one client to one server ip:port",
    ),
    Setting(
        "ephemeral_warn_fraction",
        0.5,
        "warn when one client's TIME_WAIT sockets towards one server ip:port reach this share of the "
        "ephemeral range (new connect()s start to fail with EADDRNOTAVAIL near 1.0)",
    ),
    Setting("ephemeral_critical_fraction", 0.9, "... critical at this share: EADDRNOTAVAIL is imminent"),
    Setting(
        "time_wait_buckets",
        262144,
        "Linux net.ipv4.tcp_max_tw_buckets default (per network namespace): the most TIME_WAIT sockets a host "
        "keeps; past it new ones are destroyed at once",
    ),
    Setting(
        "time_wait_buckets_warn_fraction",
        0.5,
        "warn when a server address's TIME_WAIT sockets (all ports) reach this share of time_wait_buckets",
    ),
    Setting(
        "time_wait_buckets_critical_fraction",
        0.9,
        "... critical at this share: the kernel is about to stop keeping TIME_WAIT",
    ),
    Setting(
        "server_active_close_fraction",
        0.8,
        'show (info) a service that closes first on at least this share of its closed connections ("most") ...',
    ),
    Setting("server_active_close_min", 50, "... of at least this many (one connection is not a pattern)"),
)


_BUSY_CLIENT: Final = 256  # a client list this long is folded as it grows (a client that never goes quiet)


class _Service:
    __slots__ = (
        "closes_client",
        "closes_server",
        "closes_both",
        "server_tw",
        "clients",
        "client_partial",
        "client_fold_at",
        "client_peak",
        "client_peak_ip",
        "client_peak_ts",
        "first",
        "last",
        "window_end",
    )

    def __init__(self) -> None:
        self.closes_client = self.closes_server = self.closes_both = 0
        self.server_tw = EventTimes()  # the server's entries into TIME_WAIT
        # per client ip, its entries (towards this service), in the order of their first entry
        self.clients: dict[bytes, list[float]] = {}
        self.client_partial: dict[bytes, tuple[int, float]] = {}  # a busy client's peak folded so far
        # a busy client's list is folded again when it is twice what its last fold kept (past
        # _BUSY_CLIENT): folding sorts the list, and a client whose TIME_WAITs all stay within reach
        # (a 70 s capture) would otherwise be sorted anew at every entry
        self.client_fold_at: dict[bytes, int] = {}
        self.client_peak = 0  # the largest client population folded away so far
        self.client_peak_ip = b""
        self.client_peak_ts = 0.0
        self.first = math.inf  # earliest and latest close (last FIN) into TIME_WAIT
        self.last = -math.inf
        self.window_end = -math.inf  # the end of the latest window it is listed under in `_touched`

    def fold_client(self, ip: bytes, window_s: float, upto: float) -> None:
        """Fold the client's windows up to `upto`; when no time is left, into the service's peak."""
        times = self.clients[ip]
        if len(times) == 1 and times[0] <= upto - window_s and ip not in self.client_partial:
            # (most clients: one TIME_WAIT, long over: a population of 1)
            del self.clients[ip]
            if (1, -times[0]) > (self.client_peak, -self.client_peak_ts):
                self.client_peak, self.client_peak_ip, self.client_peak_ts = 1, ip, times[0]
            return
        peak, peak_ts = self.client_partial.pop(ip, (0, 0.0))
        peak, peak_ts, kept = fold_times(self.clients[ip], window_s, upto, peak, peak_ts)
        if 2 * len(kept) > _BUSY_CLIENT:
            self.client_fold_at[ip] = 2 * len(kept)
        else:
            self.client_fold_at.pop(ip, None)
        if kept:
            self.clients[ip] = kept
            if peak:
                self.client_partial[ip] = (peak, peak_ts)
            return
        del self.clients[ip]
        if (peak, -peak_ts) > (self.client_peak, -self.client_peak_ts):
            self.client_peak, self.client_peak_ip, self.client_peak_ts = peak, ip, peak_ts


class ExcessTimeWait(Detector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, EVERY_FLOW, context)
        self.time_wait_s = max(context.time_wait_s, 1e-6)
        self.info_peak: int = t.time_wait_info_peak
        self.ports: int = t.ephemeral_ports
        self.warn_fraction: float = t.ephemeral_warn_fraction
        self.critical_fraction: float = t.ephemeral_critical_fraction
        self.buckets: int = t.time_wait_buckets
        self.buckets_warn: float = t.time_wait_buckets_warn_fraction
        self.buckets_critical: float = t.time_wait_buckets_critical_fraction
        self.server_close_fraction: float = t.server_active_close_fraction
        self.server_close_min: int = t.server_active_close_min
        self.states: list[_Service | None] = []  # by service id
        self.hosts: dict[bytes, EventTimes] = {}  # per server address: its TIME_WAIT entries, all ports
        # the services and hosts with TIME_WAIT entries, by the window (time_wait_s) of their entries:
        # prune visits only those that hold old entries
        self._touched: dict[int, set[int]] = {}
        self._touched_hosts: dict[int, set[bytes]] = {}

    def _state(self, sid: int) -> _Service:
        states = self.states
        if sid >= len(states):
            grow(states, sid)
        s = states[sid]
        if s is None:
            s = states[sid] = _Service()
        return s

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        if sid < 0:
            return False
        s = self._state(sid)
        closer = r.close_initiator
        if closer == "client":
            s.closes_client += 1
        elif closer == "server":
            s.closes_server += 1
        elif closer == "both":
            s.closes_both += 1
        server_until, client_until = r.server_time_wait_until, r.client_time_wait_until
        if server_until is None and client_until is None:
            return False
        f = r.facts
        # TIME_WAIT starts at the later FIN (at the connection's end if neither side sent one)
        start = r.end
        if f.client_fin_ts is not None:
            start = f.client_fin_ts
            if f.server_fin_ts is not None and f.server_fin_ts > start:
                start = f.server_fin_ts
        elif f.server_fin_ts is not None:
            start = f.server_fin_ts
        entry = start
        if server_until is not None and server_until > start:
            entry = server_until - self.time_wait_s
            s.server_tw.times.append(entry)
            host = self.hosts.get(r.server_ip)
            if host is None:
                host = self.hosts[r.server_ip] = EventTimes()
            host.times.append(entry)
            window = math.floor(entry / self.time_wait_s)
            touched_hosts = self._touched_hosts.get(window)
            if touched_hosts is None:
                touched_hosts = self._touched_hosts[window] = set()
            touched_hosts.add(r.server_ip)
        if client_until is not None and client_until > start:
            entry = client_until - self.time_wait_s
            times = s.clients.get(r.client_ip)
            if times is None:
                s.clients[r.client_ip] = [entry]
            else:
                times.append(entry)
                if len(times) > _BUSY_CLIENT and len(times) > s.client_fold_at.get(r.client_ip, 0):
                    s.fold_client(r.client_ip, self.time_wait_s, entry - 2.0 * self.time_wait_s)
        elif entry == start:
            return False
        if start < s.first:
            s.first = start
        if start > s.last:
            s.last = start
        if entry >= s.window_end or entry < s.window_end - self.time_wait_s:
            window = math.floor(entry / self.time_wait_s)
            s.window_end = (window + 1) * self.time_wait_s
            touched = self._touched.get(window)
            if touched is None:
                touched = self._touched[window] = set()
            touched.add(sid)
        return False

    def prune(self, latest: float) -> None:
        """Fold the populations up to two TIME_WAITs before `latest`; drop the clients left with none."""
        length = self.time_wait_s
        upto = latest - 2.0 * length
        cut = upto - length
        for window in [w for w in self._touched if (w + 1) * length <= cut]:
            for sid in self._touched.pop(window):
                s = self.states[sid]
                assert s is not None
                if s.server_tw.times:
                    s.server_tw.fold(length, upto)
                old = []
                for ip, times in s.clients.items():
                    if times[0] > cut:  # first entered lately: so were the clients after it (but for late flows)
                        break
                    old.append(ip)
                for ip in old:
                    s.fold_client(ip, length, upto)
        for window in [w for w in self._touched_hosts if (w + 1) * length <= cut]:
            for ip in self._touched_hosts.pop(window):
                host = self.hosts[ip]
                if host.times:
                    host.fold(length, upto)

    def merge(self, other: Any, ids: list[int]) -> None:
        for theirs, o in enumerate(other.states):
            if o is None or ids[theirs] < 0:
                continue
            s = self._state(ids[theirs])
            s.closes_client += o.closes_client
            s.closes_server += o.closes_server
            s.closes_both += o.closes_both
            s.server_tw.merge(o.server_tw)
            for ip, times in o.clients.items():
                s.clients[ip] = s.clients.get(ip, []) + times
            for ip, (peak, peak_ts) in o.client_partial.items():
                mine = s.client_partial.get(ip)
                if mine is None or (peak, -peak_ts) > (mine[0], -mine[1]):
                    s.client_partial[ip] = (peak, peak_ts)
            if (o.client_peak, -o.client_peak_ts) > (s.client_peak, -s.client_peak_ts):
                s.client_peak, s.client_peak_ip, s.client_peak_ts = o.client_peak, o.client_peak_ip, o.client_peak_ts
            s.first = min(s.first, o.first)
            s.last = max(s.last, o.last)
        for ip, theirs_host in other.hosts.items():
            host = self.hosts.get(ip)
            if host is None:
                host = self.hosts[ip] = EventTimes()
            host.merge(theirs_host)

    def findings(self) -> list[Finding]:
        length = self.time_wait_s
        for times in self.hosts.values():
            times.fold(length, math.inf)
        # the host-wide population is reported on the row of the address's port with the largest peak
        host_row: dict[bytes, int] = {}
        for sid, s in enumerate(self.states):
            if s is None:
                continue
            s.server_tw.fold(length, math.inf)
            for client in list(s.clients):
                s.fold_client(client, length, math.inf)
            ip = self.services.keys[sid][0]
            best = host_row.get(ip)
            if best is None or s.server_tw.peak > self._peak_of(best):
                host_row[ip] = sid
        out = []
        for sid, s in enumerate(self.states):
            if s is None:
                continue
            ip, port = self.services.keys[sid]
            finding = self._row(s, ip, port, self.hosts.get(ip) if host_row.get(ip) == sid else None)
            if finding is not None:
                out.append(finding)
        return out

    def _peak_of(self, sid: int) -> int:
        s = self.states[sid]
        return s.server_tw.peak if s is not None else 0

    def _row(self, s: _Service, ip: bytes, port: int, host: EventTimes | None) -> Finding | None:
        closes = s.closes_client + s.closes_server + s.closes_both
        ports = max(self.ports, 1)
        buckets = max(self.buckets, 1)
        client_share = s.client_peak / ports
        host_peak = host.peak if host is not None else 0
        host_share = host_peak / buckets
        server_closes = s.closes_server + s.closes_both
        server_share = server_closes / closes if closes else 0.0
        tw_peak, tw_peak_ts = s.server_tw.peak, s.server_tw.peak_ts
        closers = "active closer: client %d, server %d, both %d of %d closed connections" % (
            s.closes_client,
            s.closes_server,
            s.closes_both,
            closes,
        )
        client_text = (
            (
                "client %s held %d TIME_WAIT sockets towards this service at the peak (%s), %.1f%% of the "
                "%d ephemeral ports"
                % (format_ip(s.client_peak_ip), s.client_peak, iso_utc(s.client_peak_ts), 100.0 * client_share, ports)
            )
            if s.client_peak
            else ""
        )
        if host is not None and host_peak and host_peak != tw_peak:
            server_text = (
                "the server held %d TIME_WAIT sockets on this port at the peak (%s), %d on all ports of %s "
                "(at %s), %.2f%% of tcp_max_tw_buckets (%d; a few hundred bytes of kernel memory each)"
                % (
                    tw_peak,
                    iso_utc(tw_peak_ts),
                    host_peak,
                    format_ip(ip),
                    iso_utc(host.peak_ts),
                    100.0 * host_share,
                    buckets,
                )
            )
        elif host is not None and host_peak:
            server_text = (
                "the server held %d TIME_WAIT sockets at the peak (%s), %.2f%% of tcp_max_tw_buckets (%d; a "
                "few hundred bytes of kernel memory each)" % (tw_peak, iso_utc(tw_peak_ts), 100.0 * host_share, buckets)
            )
        elif tw_peak:
            server_text = "the server held %d TIME_WAIT sockets on this port at the peak (%s)" % (
                tw_peak,
                iso_utc(tw_peak_ts),
            )
        else:
            server_text = ""
        severity = ""
        reasons: list[str] = []
        count, client_ip = 0, ""
        for is_client, share, warn, critical in (
            (True, client_share, self.warn_fraction, self.critical_fraction),
            (False, host_share, self.buckets_warn, self.buckets_critical),
        ):
            level = "critical" if share >= critical else "warning" if share >= warn else ""
            if not level:
                continue
            if is_client:
                reasons.append(client_text + ": new connect()s fail with EADDRNOTAVAIL when none is left")
                count, client_ip = s.client_peak, format_ip(s.client_peak_ip)
            else:
                reasons.append(
                    server_text + ': past the limit the kernel skips TIME_WAIT ("time wait bucket table overflow")'
                )
                if not severity:
                    count = host_peak
            severity = severity_max(severity or level, level)
        if not severity:
            pattern = server_share >= self.server_close_fraction and closes >= self.server_close_min
            if pattern:
                reasons.append(
                    "the server closed first on %d of %d connections (%.0f%%)%s%s: harmless at this size"
                    % (server_closes, closes, 100.0 * server_share, ": " if server_text else "", server_text)
                )
                count = tw_peak
            elif max(tw_peak, s.client_peak) >= self.info_peak:
                if s.client_peak >= tw_peak:
                    reasons.append(client_text)
                    count, client_ip = s.client_peak, format_ip(s.client_peak_ip)
                else:
                    reasons.append(server_text)
                    count = tw_peak
            else:
                return None
            severity = "info"
        return Finding(
            KIND,
            severity,
            s.first,
            s.last,
            client_ip,
            None,
            format_ip(ip),
            port,
            count,
            "; ".join(reasons) + "; " + closers,
        )


DETECTOR: Final = ExcessTimeWait
