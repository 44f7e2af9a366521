"""What every detector shares: the Detector interface, findings and their rows, and the mergeable state.

A detector (one finding kind, one module in `detectors/kinds/`) sees every finished connection once
(`observe`), returns whether it tags it, keeps what it needs across connections, and turns that into
`Finding`s at the end (`findings`). Most kinds are a per-connection rule whose hits are aggregated per
server ip:port: `RuleDetector` does that aggregation once for all of them; the kind supplies the rule,
the severity ladder and the text of an aggregated row.

Every piece of cross-connection state here can be merged (`merge`) with the state another run over
other connections of the same capture built: counters add up, first/last times take the min/max,
bounded sets unite (the cap is re-applied), histograms add bin by bin. A sliding window (`RateWindow`)
merges exactly while both sides still hold the buckets of the windows that matter (each keeps the
last two windows before the latest event it has seen); a peak folded away earlier is merged as the
larger of the two peaks (a lower bound), so a split run must merge at least every two windows of
capture time to give the same result as one run.

Memory is bounded: per server ip:port (at most `max_tracked_servers` of them, admitted by `Services`),
client sets of at most 1024 addresses, sparse window buckets over two windows, log-scale histograms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from ..connection import FlowRecord
from ..decode import format_ip
from ..report import iso_utc

SEVERITIES: Final = ("info", "warning", "critical")
SEVERITY_RANK: Final = {s: i for i, s in enumerate(SEVERITIES)}
ANOMALY_COLUMNS: Final = (
    "kind",
    "severity",
    "first_seen",
    "last_seen",
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "count",
    "detail",
)
CLIENT_SET_CAP: Final = 1024


class Setting(NamedTuple):
    """One threshold: its name (a field of `Thresholds`, `--threshold NAME=VALUE`), default and why."""

    name: str
    default: float | int
    why: str


# Thresholds of the shared machinery (not of one kind)
SHARED_SETTINGS: Final = (
    Setting(
        "max_tracked_servers",
        100_000,
        "memory bound: server ip:ports whose connections are aggregated; flows of further servers are "
        "still tagged but not counted",
    ),
)


class Hit:
    """What a per-connection rule found on one connection.

    (A plain class: compiled, it is made in a fraction of the time a NamedTuple's interpreted __new__
    takes, and some kinds make one for most connections: `syn_during_time_wait` where clients reuse
    ports.)"""

    __slots__ = ("kind", "first", "last", "detail", "side", "packets", "value", "escalate")

    def __init__(
        self,
        kind: str,
        first: float,
        last: float,
        detail: str,  # one sentence about this connection
        side: str,  # "client", "server", "both" or "" (who did it / who holds the state)
        packets: int,  # packets involved (retransmissions, segments...)
        value: float,  # the kind's key number (seconds, retransmissions...), aggregated as a maximum
        escalate: bool = False,  # this connection alone justifies the kind's higher severity
    ) -> None:
        self.kind = kind
        self.first = first
        self.last = last
        self.detail = detail
        self.side = side
        self.packets = packets
        self.value = value
        self.escalate = escalate


@dataclass(slots=True)
class Finding:
    kind: str
    severity: str  # info / warning / critical
    first_seen: float  # epoch seconds
    last_seen: float
    client_ip: str  # "" when the finding is about many clients
    client_port: int | None  # None when about many connections/clients
    server_ip: str
    server_port: int
    count: int  # connections (or packets, see the kind's documentation) involved
    detail: str  # one human sentence with the numbers


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


def finding_order(f: Finding) -> tuple[int, float, str, str, int]:
    """The anomalies report's order: most severe first, then by time."""
    return (-SEVERITY_RANK[f.severity], f.first_seen, f.kind, f.server_ip, f.server_port)


# ---------------------------------------------------------------------------------- text
def plural(n: int, word: str) -> str:
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def other_side(side: str) -> str:
    return "server" if side == "client" else "client"


def ip_port(ip: bytes, port: int) -> str:
    text = format_ip(ip)
    return ("[%s]:%d" if ":" in text else "%s:%d") % (text, port)


def seconds_text(s: float) -> str:
    """A duration for a detail: milliseconds below a second, seconds above."""
    if s < 1.0:
        return "%.3g ms" % (s * 1000.0) if s >= 0.001 else "%.3g us" % (s * 1e6)
    return "%.1f s" % s


def severity_max(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


def observed_until(r: FlowRecord) -> float:
    """The latest time the connection is known to have been observed: its last packet, or the capture
    time when the engine finalised it (for one still open at the end: the capture's last packet)."""
    f = r.facts
    t = r.end
    if f.client_last_ts > t:
        t = f.client_last_ts
    if f.server_last_ts > t:
        t = f.server_last_ts
    if r.finalised_at > t:
        t = r.finalised_at
    return t


# ---------------------------------------------------------------------------------- services
class Services:
    """Which server ip:ports are tracked (the memory bound shared by every detector), by a dense id.

    A service is admitted the first time one of its connections is seen, until `limit` services are
    tracked; connections of services seen later are still tagged but not aggregated (`dropped`).
    Detectors keep their per-service state by the id (`admit`'s answer), looked up once per flow."""

    __slots__ = ("limit", "ids", "keys", "dropped")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.ids: dict[tuple[bytes, int], int] = {}
        self.keys: list[tuple[bytes, int]] = []  # by id
        self.dropped = 0

    def admit(self, key: tuple[bytes, int]) -> int:
        """The service's id, or -1 when it is not tracked."""
        sid = self.ids.get(key)
        if sid is not None:
            return sid
        if len(self.keys) < self.limit:
            sid = self.ids[key] = len(self.keys)
            self.keys.append(key)
            return sid
        self.dropped += 1
        return -1

    def merge(self, other: Services) -> list[int]:
        """Admit `other`'s services; return, by other's id, this set's id for the same service (-1: not
        tracked here)."""
        self.dropped += other.dropped
        ids = []
        for key in other.keys:
            sid = self.ids.get(key)
            if sid is None and len(self.keys) < self.limit:
                sid = self.ids[key] = len(self.keys)
                self.keys.append(key)
            ids.append(-1 if sid is None else sid)
        return ids


class Context:
    """What a detector knows about the run beyond its thresholds."""

    __slots__ = ("time_wait_s", "services")

    def __init__(self, time_wait_s: float = 60.0, services: Services | None = None) -> None:
        self.time_wait_s = time_wait_s  # the engine's 2*MSL: how long a TIME_WAIT lasts
        self.services = services if services is not None else Services(1 << 62)


# ---------------------------------------------------------------------------------- screening
# The families of facts a per-connection rule can react to: `facts_seen` computes them once per
# connection, and a detector is shown a connection only when it has one of the families it `watches`
# (or watches EVERY_FLOW). A connection with none (the handshake completed, both sides closed with a
# FIN, nothing else happened: most of them) is shown to the every-flow detectors only.
HANDSHAKE_INCOMPLETE: Final = 1 << 0  # no SYN-ACK or no completed handshake
RST_SEEN: Final = 1 << 1  # a RST from either side
FIN_MISSING: Final = 1 << 2  # a side sent no FIN
BAD_HANDSHAKE_ACK: Final = 1 << 3  # a SYN-ACK or third ACK acknowledging the wrong number
SYN_IN_TIME_WAIT: Final = 1 << 4  # the SYN met the previous connection's TIME_WAIT
DATA_AFTER_CLOSE: Final = 1 << 5  # payload after a FIN or RST
FIN_RETRANSMITTED: Final = 1 << 6  # a FIN sent again
ZERO_WINDOW: Final = 1 << 7  # a zero-window stall
QUIET_PEER: Final = 1 << 8  # one side's last packet long after the other's (see facts_seen)
KEEPALIVE_UNANSWERED: Final = 1 << 9  # keepalive probes with no answer after them
RESENT: Final = 1 << 10  # payload retransmitted
CHALLENGE_ACK: Final = 1 << 11  # a SYN answered by an ACK for another sequence number
ALWAYS: Final = 1 << 29  # present on every connection
EVERY_FLOW: Final = (1 << 30) - 1  # `watches` of a detector that sees every connection


def facts_seen(r: FlowRecord, quiet_gap: float) -> int:
    """The fact families present on the connection (quiet_gap: the shortest silence any detector
    reacts to)."""
    f = r.facts
    seen = ALWAYS
    if f.synack_ts is None or f.handshake_done_ts is None:
        seen |= HANDSHAKE_INCOMPLETE
    if f.client_rst_ts is not None or f.server_rst_ts is not None:
        seen |= RST_SEEN
    if f.client_fin_ts is None or f.server_fin_ts is None:
        seen |= FIN_MISSING
    if f.bad_synack or f.bad_third_ack:
        seen |= BAD_HANDSHAKE_ACK
    if f.syn_in_time_wait:
        seen |= SYN_IN_TIME_WAIT
    if f.client_data_after_close or f.server_data_after_close:
        seen |= DATA_AFTER_CLOSE
    if f.client_fin_retransmits or f.server_fin_retransmits:
        seen |= FIN_RETRANSMITTED
    if f.client_zero_window_s > 0 or f.server_zero_window_s > 0:
        seen |= ZERO_WINDOW
    if abs(f.client_last_ts - f.server_last_ts) >= quiet_gap:
        seen |= QUIET_PEER
    if f.client_keepalives_unanswered or f.server_keepalives_unanswered:
        seen |= KEEPALIVE_UNANSWERED
    if f.resends is not None:
        seen |= RESENT
    if f.challenge_acks:
        seen |= CHALLENGE_ACK
    return seen


def backed_off_unanswered(r: FlowRecord, side: str, min_resends: int) -> bool:
    """Whether `side` re-sent one segment at least `min_resends` times, each after a longer wait than the
    one before (its retransmission timer backing off), and the other side sent nothing (no ACK) since the
    first of them: the peer is dead or unreachable."""
    f = r.facts
    rs = f.resends
    if rs is None:
        return False
    mine = rs.side(side)
    resends, first = mine.backoff_resends, mine.backoff_from
    silent_last = f.server_last_ts if side == "client" else f.client_last_ts
    return resends >= min_resends and first is not None and silent_last < first


# ---------------------------------------------------------------------------------- bounded sets
class CappedSet:
    """Distinct addresses, at most CLIENT_SET_CAP of them; `capped` once one more was seen."""

    __slots__ = ("items", "capped")

    def __init__(self) -> None:
        self.items: set[bytes] = set()
        self.capped = False

    def add(self, item: bytes, cap: int = CLIENT_SET_CAP) -> None:
        items = self.items
        if len(items) < cap:
            items.add(item)
        elif item not in items:
            self.capped = True

    def merge(self, other: CappedSet, cap: int = CLIENT_SET_CAP) -> None:
        self.capped = self.capped or other.capped
        for item in other.items:
            self.add(item, cap)

    def text(self) -> str:
        """How many: ">=N" when capped."""
        return "%s%d" % (">=" if self.capped else "", len(self.items))


# ---------------------------------------------------------------------------------- aggregation
class Aggregate:
    """One (kind, server ip:port) row in the making: what its connections' hits add up to.

    The row's example (its detail when it is about one connection, its client ip/port) is the earliest
    hit's, by time and then by client ip:port, so that it does not depend on the order flows arrive in.
    """

    __slots__ = (
        "count",
        "first",
        "last",
        "example_first",
        "client_ip",
        "client_port",
        "many_ports",
        "detail",
        "clients",
        "packets",
        "value_max",
        "value_sum",
        "sides",
        "escalated",
    )

    def __init__(self) -> None:
        self.count = 0
        self.first = math.inf
        self.last = -math.inf
        self.example_first = math.inf
        self.client_ip = b""
        self.client_port = 0
        self.many_ports = False
        self.detail = ""
        self.clients = CappedSet()
        self.packets = 0
        self.value_max = 0.0
        self.value_sum = 0.0
        self.sides: dict[str, int] = {}
        self.escalated = 0

    def add(self, hit: Hit, record: FlowRecord) -> None:
        self._example(hit.first, record.client_ip, record.client_port, hit.detail)
        self.count += 1
        self.clients.add(record.client_ip)
        if hit.first < self.first:
            self.first = hit.first
        if hit.last > self.last:
            self.last = hit.last
        self.packets += hit.packets
        if hit.value > self.value_max:
            self.value_max = hit.value
        self.value_sum += hit.value
        self.sides[hit.side] = self.sides.get(hit.side, 0) + 1
        if hit.escalate:
            self.escalated += 1

    def takes_example(self, first: float, ip: bytes, port: int) -> bool:
        """Whether a hit at `first` from client ip:port becomes the row's example (the earliest so far,
        by time and then by client ip:port): a rule whose detail text is costly builds it only then."""
        # (first, ip, port) < (example_first, client_ip, client_port), item by item: the compiled build
        # would make two tuples to compare them, twice for each hit (times are never NaN)
        if not self.count:
            return True
        if first != self.example_first:
            return first < self.example_first
        if ip != self.client_ip:
            return ip < self.client_ip
        return port < self.client_port

    def _example(self, first: float, ip: bytes, port: int, detail: str) -> None:
        if self.count and (ip != self.client_ip or port != self.client_port):
            self.many_ports = True
        if self.takes_example(first, ip, port):
            self.example_first, self.client_ip, self.client_port, self.detail = first, ip, port, detail

    def merge(self, other: Aggregate) -> None:
        if not other.count:
            return
        if other.many_ports:
            self.many_ports = True
        self._example(other.example_first, other.client_ip, other.client_port, other.detail)
        self.count += other.count
        self.clients.merge(other.clients)
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        self.packets += other.packets
        self.value_max = max(self.value_max, other.value_max)
        self.value_sum += other.value_sum
        for side, n in other.sides.items():
            self.sides[side] = self.sides.get(side, 0) + n
        self.escalated += other.escalated

    def one_client(self) -> bool:
        return len(self.clients.items) == 1 and not self.clients.capped

    def clients_text(self) -> str:
        if self.one_client():
            return "from " + format_ip(next(iter(self.clients.items)))
        return "from %s clients" % self.clients.text()

    def sides_text(self) -> str:
        return ", ".join("%s %d" % (s, n) for s, n in sorted(self.sides.items(), key=lambda x: (-x[1], x[0])))


# ---------------------------------------------------------------------------------- sliding windows
_NOT_COUNTED: Final = -(1 << 60)  # RateWindow.counted_idx when no window count is kept


class RateWindow:
    """Events per sliding window, from sparse sub-buckets (`slots` per window).

    The count of "the window ending at a bucket" is the sum of that bucket and the `slots - 1` before
    it. `add` returns that count for the event's bucket as known so far. The run's result (`peak`,
    when, and the span of the windows that reached `level`) is computed from the buckets, so it does
    not depend on the order events arrive in; `prune` folds buckets two windows behind the latest event
    into that result and drops them (memory bound).
    """

    __slots__ = (
        "width",
        "slots",
        "level",
        "buckets",
        "latest_idx",
        "folded_upto",
        "peak",
        "peak_ts",
        "hot_first",
        "hot_last",
        "counted_idx",
        "counted",
    )

    def __init__(self, window_s: float, level: float, slots: int = 10) -> None:
        self.slots = slots
        self.width = max(window_s, 1e-6) / slots
        self.level = level
        self.buckets: dict[int, list[float]] = {}  # bucket index -> [events, earliest, latest event time]
        self.latest_idx = -(1 << 62)
        self.folded_upto = -(1 << 62)  # windows ending at buckets up to here are in the result
        self.peak = 0
        self.peak_ts = 0.0
        self.hot_first = math.inf  # earliest event of a window that reached `level`
        self.hot_last = -math.inf  # latest event of a bucket whose window reached it
        # the events of the window ending at bucket counted_idx, kept up to date as events come (most
        # events fall in the latest bucket: its window is not summed again for each); forgotten when
        # buckets are dropped or merged
        self.counted_idx = _NOT_COUNTED
        self.counted = 0.0

    def add(self, ts: float) -> int:
        """Count one event; return the events in the window ending at its bucket (as known so far)."""
        return self._window_count(self.note(ts))

    def note(self, ts: float, n: int = 1) -> int:
        """Count n events at ts; return their bucket."""
        idx = math.floor(ts / self.width)
        buckets = self.buckets
        bucket = buckets.get(idx)
        if bucket is None:
            buckets[idx] = [float(n), ts, ts]
        else:
            bucket[0] += n
            if ts < bucket[1]:
                bucket[1] = ts
            if ts > bucket[2]:
                bucket[2] = ts
        if idx > self.latest_idx:
            self.latest_idx = idx
        if self.counted_idx - self.slots < idx <= self.counted_idx:
            self.counted += n
        if idx <= self.folded_upto:  # late (a flow finalised long after its event): fold it in now
            self._fold(idx)
        return idx

    def _window_count(self, idx: int) -> int:
        if idx == self.counted_idx:
            return int(self.counted)
        buckets = self.buckets
        counted = 0.0
        for i in range(idx - self.slots + 1, idx + 1):
            b = buckets.get(i)
            if b is not None:
                counted += b[0]
        self.counted_idx = idx
        self.counted = counted
        return int(counted)

    def _fold(self, idx: int) -> None:
        """Fold the window ending at bucket idx into the result."""
        buckets = self.buckets
        counted = 0.0
        earliest = math.inf
        for i in range(idx - self.slots + 1, idx + 1):
            b = buckets.get(i)
            if b is not None:
                counted += b[0]
                if b[1] < earliest:
                    earliest = b[1]
        n = int(counted)
        last = buckets[idx][2]
        if n > self.peak or (n == self.peak and n and last < self.peak_ts):
            self.peak, self.peak_ts = n, last
        if n and n >= self.level:
            self.hot_first = min(self.hot_first, earliest)
            self.hot_last = max(self.hot_last, last)

    def prune(self, latest: float) -> None:
        """Fold the windows ending two windows before `latest` (the run's latest event) into the
        result, and drop the buckets no window after them needs."""
        buckets = self.buckets
        horizon = math.floor(latest / self.width) - 2 * self.slots
        for idx in sorted(i for i in buckets if self.folded_upto < i <= horizon):
            self._fold(idx)
            self.folded_upto = idx
        for idx in [i for i in buckets if i <= horizon - self.slots]:
            del buckets[idx]
            self.counted_idx = _NOT_COUNTED

    def result(self) -> None:
        """Fold every window not folded yet (at the end of the run)."""
        for idx in sorted(i for i in self.buckets if i > self.folded_upto):
            self._fold(idx)
            self.folded_upto = idx

    def merge(self, other: RateWindow) -> None:
        self.counted_idx = _NOT_COUNTED
        buckets = self.buckets
        for idx, (n, earliest, latest) in other.buckets.items():
            bucket = buckets.get(idx)
            if bucket is None:
                buckets[idx] = [n, earliest, latest]
            else:
                bucket[0] += n
                bucket[1] = min(bucket[1], earliest)
                bucket[2] = max(bucket[2], latest)
        self.latest_idx = max(self.latest_idx, other.latest_idx)
        # windows folded away on either side: their peak is the larger one (see the module docstring);
        # those still held are folded again from the merged buckets
        self.folded_upto = min(self.folded_upto, other.folded_upto)
        if other.peak > self.peak or (other.peak == self.peak and other.peak_ts < self.peak_ts):
            self.peak, self.peak_ts = other.peak, other.peak_ts
        self.hot_first = min(self.hot_first, other.hot_first)
        self.hot_last = max(self.hot_last, other.hot_last)

    def empty(self) -> bool:
        return not self.buckets and self.peak == 0


def fold_times(
    times: list[float], window_s: float, upto: float, peak: int, peak_ts: float
) -> tuple[int, float, list[float]]:
    """The most events of `times` within any `window_s` (each event lasts window_s: a TIME_WAIT), over
    the windows ending at events up to `upto`, folded into (peak, peak_ts); and the times a window
    ending after `upto` can still need. peak_ts is the end of the earliest window with the peak."""
    times = sorted(times)
    j = 0
    for i, e in enumerate(times):
        if e > upto:
            break
        while times[j] <= e - window_s:
            j += 1
        n = i - j + 1
        if n > peak or (n == peak and e < peak_ts):
            peak, peak_ts = n, e
    cut = upto - window_s
    return peak, peak_ts, [e for e in times if e > cut]


class EventTimes:
    """Event times and the most of them within any window (`fold_times`).

    Exact: the peak is computed from the times themselves; `fold(upto)` computes the windows ending at
    events up to `upto` and keeps only the times a later window can still need (memory bound). Two
    sets of times merge exactly until folded (folded peaks merge as the larger one)."""

    __slots__ = ("times", "peak", "peak_ts")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.peak = 0
        self.peak_ts = 0.0

    def fold(self, window_s: float, upto: float) -> None:
        self.peak, self.peak_ts, self.times = fold_times(self.times, window_s, upto, self.peak, self.peak_ts)

    def merge(self, other: EventTimes) -> None:
        self.times.extend(other.times)
        if other.peak > self.peak or (other.peak == self.peak and other.peak_ts < self.peak_ts):
            self.peak, self.peak_ts = other.peak, other.peak_ts


# ---------------------------------------------------------------------------------- histograms
_BINS_PER_DECADE: Final = 20  # 12% wide bins: plenty to compare times orders of magnitude apart


class LogHistogram:
    """Positive durations in log-scale bins (sparse): bounded, mergeable, and good for a median."""

    __slots__ = ("bins", "total")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.total = 0

    @staticmethod
    def bin_of(x: float) -> int:
        return math.floor(math.log10(max(x, 1e-9)) * _BINS_PER_DECADE)

    @staticmethod
    def bin_low(b: int) -> float:
        return 10.0 ** (b / _BINS_PER_DECADE)

    def add(self, x: float) -> None:
        b = self.bin_of(x)
        self.bins[b] = self.bins.get(b, 0) + 1
        self.total += 1

    def merge(self, other: LogHistogram) -> None:
        for b, n in other.bins.items():
            self.bins[b] = self.bins.get(b, 0) + n
        self.total += other.total

    def median(self) -> float:
        """The middle value, as the geometric middle of its bin (0.0 when empty)."""
        if not self.total:
            return 0.0
        seen = 0
        for b in sorted(self.bins):
            seen += self.bins[b]
            if 2 * seen >= self.total:
                return math.sqrt(self.bin_low(b) * self.bin_low(b + 1))
        return 0.0

    def count_at_least(self, x: float) -> int:
        """How many values are at least x (by bin: a value in x's own bin counts if the bin starts at x)."""
        cut = self.bin_of(x)
        low = self.bin_low(cut)
        return sum(n for b, n in self.bins.items() if b > cut or (b == cut and low >= x))


# ---------------------------------------------------------------------------------- detectors
class Detector:
    """One finding kind. Subclasses live one per module in `detectors/kinds/`.

    `watches`: the fact families (above) of the connections it must see, EVERY_FLOW for all of them;
    `quiet_gap`: with QUIET_PEER, the shortest silence of one side that it reacts to."""

    kind: str
    watches: int
    quiet_gap: float

    def __init__(self, kind: str, watches: int, context: Context) -> None:
        self.kind = kind
        self.watches = watches
        self.quiet_gap = math.inf
        self.services = context.services

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        """See one finished connection; True if it is tagged with this kind.

        `obs_end` is `observed_until(r)`, `sid` its server ip:port's id in `services` (-1: that service
        is not tracked, so nothing is aggregated for it)."""
        raise NotImplementedError

    def prune(self, latest: float) -> None:
        """Drop state that can no longer change (called every few thousand flows)."""

    def merge(self, other: Any, ids: list[int]) -> None:
        """Add what `other` (the same kind, with the same thresholds) saw on other connections; `ids`
        maps other's service ids to this one's (`Services.merge`)."""
        raise NotImplementedError

    def findings(self) -> list[Finding]:
        raise NotImplementedError

    def folds(self, finding: Finding) -> bool:
        """Whether another kind's `finding` (made by `findings`, called first) is part of one of this
        detector's findings, which keeps its count: the report leaves it out."""
        return False


class RuleDetector(Detector):
    """A per-connection rule whose hits are aggregated per server ip:port: one row each.

    Subclasses define `rule` (None or a Hit), `severity` of a row and `summary` (the detail of a row
    about more than one connection; a row about one connection shows its hit's own detail)."""

    def __init__(self, kind: str, watches: int, context: Context) -> None:
        super().__init__(kind, watches, context)
        self.aggs: dict[int, Aggregate] = {}  # by service id

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        raise NotImplementedError

    def severity(self, agg: Aggregate, sid: int) -> str:
        raise NotImplementedError

    def summary(self, agg: Aggregate, sid: int) -> str:
        raise NotImplementedError

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        hit = self.rule(r, obs_end)
        if hit is None:
            return False
        if sid >= 0:
            self.aggregate(hit, r, sid)
        return True

    def aggregate(self, hit: Hit, r: FlowRecord, sid: int) -> None:
        agg = self.aggs.get(sid)
        if agg is None:
            agg = self.aggs[sid] = Aggregate()
        agg.add(hit, r)

    def merge(self, other: Any, ids: list[int]) -> None:
        for theirs, agg in other.aggs.items():
            sid = ids[theirs]
            if sid < 0:
                continue
            mine = self.aggs.get(sid)
            if mine is None:
                mine = self.aggs[sid] = Aggregate()
            mine.merge(agg)

    def findings(self) -> list[Finding]:
        return [self.row(agg, sid) for sid, agg in self.aggs.items()]

    def row(self, agg: Aggregate, sid: int) -> Finding:
        ip, port = self.services.keys[sid]
        n = agg.count
        detail = agg.detail if n == 1 else self.summary(agg, sid)
        return Finding(
            self.kind,
            self.severity(agg, sid),
            agg.first,
            agg.last,
            format_ip(agg.client_ip) if agg.one_client() else "",
            agg.client_port if n == 1 else None,
            format_ip(ip),
            port,
            n,
            detail,
        )


def grow(states: list, sid: int) -> None:
    """Make `states[sid]` exist (None) in a per-service list."""
    if sid >= len(states):
        states.extend([None] * (sid + 1 - len(states)))
