"""Each host's sockets as `ss -tan` on that host would have listed them, rebuilt from the finished
connections: the socket table at one instant (`--report sockets`) and the state populations over
time (`--report timeline`).

A connection's record carries each endpoint's RFC 9293 state changes, with their capture times
(`ConnectionFacts.client_state_changes` / `server_state_changes`). `socket_spans` turns a record
into *spans*: "this host's socket in this port class was in this state from this time until
that time". It is the one place that says how long a state lasts beyond the packets, which the
capture implies but does not show:

- TIME_WAIT lasts 2*MSL from the moment it was entered (`--msl`); a new SYN on the 4-tuple ends it
  then (the kernel reuses the TIME_WAIT socket for the new connection).
- SYN_RECV lasts until the handshake completes, a RST, or the server gives up: Linux retransmits
  the SYN-ACK `tcp_synack_retries` (5) times, at 1, 3, 7, 15 and 31 s, and drops the request 63 s
  after the first SYN-ACK (`SocketTimers.syn_recv_s`).
- SYN_SENT lasts until the handshake, a RST, or the client gives up (`SocketTimers.syn_sent_s`).
- Every other state lasts until the next change, whether the connection's record was finalised
  since or not: a CLOSE_WAIT socket stays until its FIN, an idle ESTABLISHED one stays ESTABLISHED.
- UNKNOWN: a socket the capture shows exists but whose state it cannot tell. Both endpoints of a
  connection picked up midstream are UNKNOWN until something moves them (a FIN, a RST). An endpoint
  is UNKNOWN from a segment sent to it whose effect the numbers do not show, until its state would
  have ended: its peer's FIN it has not acknowledged, its peer's RST that was not shown acceptable
  (the engine moves it to CLOSED only for an acceptable one), a SYN-ACK sent to it in SYN_SENT.
- LISTEN: a port that answered a SYN with a SYN-ACK is listening from its first SYN-ACK on.
- CLOSED is no socket.

Port classes: the responder's endpoint of a connection is counted on its port, role `server`
(a listening port, or one a connection picked up midstream was taken to be the server's); the
originator's endpoints of a host are one group, role `client`, with no port (ephemeral ports).

Memory: the socket table keeps a row of counts per host and port class; for the end of the capture
(the default instant, unknown until the last packet), also the spans still running when their
record came, until they end (a heap ordered by end time: the sockets the capture holds in a timed
state, as the tracker's TIME_WAIT memory). The timeline keeps, per time bucket, the changes of the
hosts and services it may show (the most active ones, `--top`: `_Tracked`), and a count per host;
never anything per connection.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from . import tcp_states as rfc
from .connection import FlowRecord
from .decode import format_ip
from .pipeline import Auditor
from .report import iso_utc
from .tables import Column, TableStyle, printable, render, titled

#: The socket table's state columns, in `ss`'s names (SYN_RECV for RFC 9293's SYN-RECEIVED).
STATE_COLUMNS: Final = (
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "TIME_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "CLOSING",
    "LISTEN",
    "UNKNOWN",
)
SOCKET_COLUMNS: Final = ("host", "port", "role", *STATE_COLUMNS)
EVENT_COLUMNS: Final = ("syn", "synack", "handshakes", "rst", "fin")
TIMELINE_COLUMNS: Final = ("time", "time_epoch", "host", "port", *STATE_COLUMNS, *EVENT_COLUMNS)

_COLUMN: Final = {
    rfc.ESTABLISHED: 0,
    rfc.SYN_SENT: 1,
    rfc.SYN_RCVD: 2,
    rfc.FIN_WAIT_1: 3,
    rfc.FIN_WAIT_2: 4,
    rfc.TIME_WAIT: 5,
    rfc.CLOSE_WAIT: 6,
    rfc.LAST_ACK: 7,
    rfc.CLOSING: 8,
    rfc.UNKNOWN: 10,
}  # (CLOSED is no socket; LISTEN is a port's, not a connection's)
LISTEN: Final = 9
UNKNOWN: Final = 10
TIME_WAIT: Final = 5
_N: Final = len(STATE_COLUMNS)
_SERVICE_WIDTH: Final = _N + len(EVENT_COLUMNS)  # a service's values per bucket: its states, then its events
INFINITY: Final = math.inf

Key = tuple[bytes, int | None, str]
"""A port class: (host address, port or None for the client group, "server" or "client")."""
Span = tuple[Key, int, float, float, int]
"""(port class, state column, from, until, +1 or -1): one socket in that state over [from, until)."""


@dataclass(frozen=True, slots=True)
class SocketTimers:
    """How long Linux keeps a socket in a state the capture leaves it in when nothing else ends it."""

    # tcp_synack_retries = 5: the SYN-ACK is sent at 0 s and again at 1, 3, 7, 15, 31 s (the timer doubles
    # from 1 s); the request is dropped when the timer after the last one (32 s) runs out: at 63 s
    syn_recv_s: float = 63.0
    # tcp_syn_retries = 6 with the classic doubling from 1 s: SYNs at 0, 1, 3, 7, 15, 31, 63 s, connect()
    # fails at 127 s (Linux 6.7 and later retransmit the first SYNs at 1 s intervals, tcp_syn_linear_timeouts,
    # and give up sooner)
    syn_sent_s: float = 127.0


LINUX: Final = SocketTimers()


def client_key(ip: bytes) -> Key:
    return (ip, None, "client")


def server_key(ip: bytes, port: int) -> Key:
    return (ip, port, "server")


class _LastSpans:
    """The spans `socket_spans` made last, and for what: several sinks (a timeline, the HTML report's)
    ask for the same record's one after the other. The list is shared: callers only read it. The
    sinks' `rows()` let go of the record (`forget`), so that nothing of a run outlives it."""

    def __init__(self) -> None:
        self.record: FlowRecord | None = None
        self.time_wait_s = 0.0
        self.timers = LINUX
        self.after = 0.0
        self.spans: list[Span] = []

    def forget(self) -> None:
        self.record = None
        self.spans = []


_last: Final = _LastSpans()


def socket_spans(
    record: FlowRecord, time_wait_s: float, timers: SocketTimers = LINUX, after: float = -INFINITY
) -> list[Span]:
    """The spans of both endpoints' sockets of one connection (see the module docstring); with `after`,
    only those that end later (a table at an instant needs no span that ended before it)."""
    last = _last
    if last.record is record and last.after == after and last.time_wait_s == time_wait_s and last.timers is timers:
        return last.spans
    spans = _socket_spans(record, time_wait_s, timers, after)
    last.record, last.time_wait_s, last.timers, last.after, last.spans = record, time_wait_s, timers, after, spans
    return spans


def _socket_spans(record: FlowRecord, time_wait_s: float, timers: SocketTimers, after: float) -> list[Span]:
    facts = record.facts
    client_changes, server_changes = facts.client_state_changes, facts.server_state_changes
    if client_changes is None or server_changes is None:
        raise ValueError(
            "the record has no state changes: the tracker keeps them when asked "
            "(SocketTable.attach, Timeline.attach, or ConnectionTracker.record_state_changes)"
        )
    initial = rfc.UNKNOWN if record.direction_guessed else rfc.CLOSED
    spans: list[Span] = []
    _endpoint_spans(
        spans,
        client_key(record.client_ip),
        initial,
        record.start,
        client_changes,
        facts.syn_ts,
        facts.synack_ts,
        facts.synack_ts,
        facts.server_rst_ts,
        None if facts.server_fin_acked else facts.server_fin_ts,
        time_wait_s,
        timers,
        after,
    )
    _endpoint_spans(
        spans,
        server_key(record.server_ip, record.server_port),
        initial,
        record.start,
        server_changes,
        facts.syn_ts,
        facts.synack_ts,
        None,
        facts.client_rst_ts,
        None if facts.client_fin_acked else facts.client_fin_ts,
        time_wait_s,
        timers,
        after,
    )
    tw_until = facts.time_wait_until
    if (
        facts.syn_in_time_wait
        and tw_until is not None
        and facts.syn_ts is not None
        and facts.syn_ts < tw_until
        and tw_until > after
    ):
        # the previous connection's TIME_WAIT on this 4-tuple ended at this SYN (the socket was reused).
        # With both sides in TIME_WAIT ("both") only the one that lasts longer is known by its until: the
        # other is left to run out on its own
        holder = (
            server_key(facts.time_wait_holder_ip, facts.time_wait_holder_port)
            if facts.time_wait_holder == "server"
            else client_key(facts.time_wait_holder_ip)
        )
        if facts.time_wait_holder == "both":
            holder = (
                client_key(record.client_ip)
                if facts.time_wait_holder_ip == record.client_ip and facts.time_wait_holder_port == record.client_port
                else server_key(facts.time_wait_holder_ip, facts.time_wait_holder_port)
            )
        spans.append((holder, TIME_WAIT, facts.syn_ts, tw_until, -1))
    return spans


def _endpoint_spans(
    spans: list[Span],
    key: Key,
    state: str,
    since: float,
    changes: list[tuple[float, str]],
    syn_ts: float | None,
    synack_ts: float | None,
    synack_to_it: float | None,
    peer_rst: float | None,
    peer_fin_unacked: float | None,
    time_wait_s: float,
    timers: SocketTimers,
    after: float,
) -> None:
    """One endpoint's spans that end after `after`. The last state may be in doubt: from a SYN-ACK sent to
    it (`synack_to_it`) while it is still SYN_SENT, its peer's FIN that it has not acknowledged, or a RST
    of its peer that it did nothing after (an accepted one would have made it CLOSED): it may or may not
    have received them."""
    for ts, new_state in changes:
        if ts > since and ts > after:
            column = _COLUMN.get(state)
            if column is not None:
                spans.append((key, column, since, ts, 1))
        state, since = new_state, ts
    column = _COLUMN.get(state)
    if column is None:
        return
    until = INFINITY
    if state == rfc.TIME_WAIT:
        until = since + time_wait_s
    elif state == rfc.SYN_RCVD:
        until = (since if synack_ts is None else synack_ts) + timers.syn_recv_s
    elif state == rfc.SYN_SENT:
        until = (since if syn_ts is None else syn_ts) + timers.syn_sent_s
    cut = INFINITY  # the first segment whose effect is in doubt
    if peer_fin_unacked is not None:
        cut = max(since, peer_fin_unacked)
    if peer_rst is not None and since <= peer_rst < cut:
        cut = peer_rst
    if state == rfc.SYN_SENT and synack_to_it is not None and since <= synack_to_it < cut:
        cut = synack_to_it
    if column != UNKNOWN and cut < until:
        if since < cut and cut > after:
            spans.append((key, column, since, cut, 1))
        if until > after:
            spans.append((key, UNKNOWN, cut, until, 1))
    elif until > since and until > after:
        spans.append((key, column, since, until, 1))


def _key_order(key: Key) -> tuple[int, bytes, int, int]:
    """Hosts by address (IPv4 first), each host's listening ports in order, then its client group."""
    ip, port, _ = key
    return (len(ip), ip, 1 if port is None else 0, port or 0)


def _row(key: Key, counts: list[int]) -> dict[str, Any]:
    ip, port, role = key
    row: dict[str, Any] = {"host": format_ip(ip), "port": port, "role": role}
    row.update(zip(STATE_COLUMNS, counts, strict=True))
    return row


class SocketTable:
    """A flow sink: the number of sockets in each state per host and port class at one instant.

    `at`: the instant (epoch seconds); None for the end of the capture, given to `rows`.
    """

    @classmethod
    def attach(cls, auditor: Auditor, at: float | None = None) -> SocketTable:
        """A socket table fed by `auditor` (its TIME_WAIT length), which is told to keep the state changes."""
        table = cls(auditor.config.time_wait, at)
        auditor.tracker.record_state_changes = True
        auditor.add_flow_sink(table)
        return table

    def __init__(self, time_wait_s: float, at: float | None = None, timers: SocketTimers = LINUX) -> None:
        self.time_wait_s = time_wait_s
        self.at = at
        self.timers = timers
        self.counts: dict[Key, list[int]] = {}
        self.listen_since: dict[tuple[bytes, int], float] = {}
        # (at the end of the capture) spans still running when their record came: (until, n, key, column, weight)
        self._running: list[tuple[float, int, Key, int, int]] = []
        self._pushed = 0
        self._now = -INFINITY  # the latest finalisation seen: the capture's end is no earlier

    def __call__(self, record: FlowRecord) -> None:
        synack_ts = record.facts.synack_ts
        if synack_ts is not None:
            where = (record.server_ip, record.server_port)
            if synack_ts < self.listen_since.get(where, INFINITY):
                self.listen_since[where] = synack_ts
        at = self.at
        if at is not None:
            for key, column, start, _, weight in socket_spans(record, self.time_wait_s, self.timers, at):
                if start <= at:
                    self._count(key, column, weight)
            return
        if record.finalised_at > self._now:
            self._now = record.finalised_at
            self._expire(self._now)
        # every span starts before its record's finalisation, so before the end: those that end later count
        # (all of the record's spans are asked for: the timelines of the same run ask for the same)
        now = self._now
        for key, column, _, until, weight in socket_spans(record, self.time_wait_s, self.timers):
            if until > now:
                self._count(key, column, weight)
                if until < INFINITY:
                    self._pushed += 1
                    heapq.heappush(self._running, (until, self._pushed, key, column, weight))

    def _count(self, key: Key, column: int, weight: int) -> None:
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * _N
        counts[column] += weight

    def _expire(self, now: float) -> None:
        """The running spans that ended by `now` (the capture's end is at least that) no longer count."""
        running = self._running
        while running and running[0][0] <= now:
            _, _, key, column, weight = heapq.heappop(running)
            self.counts[key][column] -= weight

    def rows(self, end: float | None = None) -> list[dict[str, Any]]:
        """The table at `at`, or at `end` (the capture's last packet) when `at` was None: one row per host
        and port class that has a socket then, in SOCKET_COLUMNS order."""
        _last.forget()
        instant = self.at
        if instant is None:
            instant = INFINITY if end is None else end
            self._expire(instant)
        for (ip, port), since in self.listen_since.items():
            if since <= instant:
                self.counts.setdefault(server_key(ip, port), [0] * _N)[LISTEN] = 1
        return [
            _row(key, counts)
            for key, counts in sorted(self.counts.items(), key=lambda kv: _key_order(kv[0]))
            if any(counts)
        ]


# ---------------------------------------------------------------------- the timeline
def parse_duration(text: str) -> float:
    """'1s', '10s', '500ms', '1m', '2h', or seconds ('0.5'): seconds, more than zero; ValueError if not."""
    value = text.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)):
        if value.endswith(suffix):
            value, scale = value[: -len(suffix)], factor
            break
    try:
        seconds = float(value) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 1s, 10s, 500ms, 1m, 1h)") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{text!r}: a duration must be more than zero")
    return seconds


class _Tracked:
    """The per-bucket changes of at most about `keep` keys (hosts or services), the most active ones.

    Every key's activity is counted; the changes of at most 2 * `keep` keys are kept. Once that many
    are, a key is taken in only when it is more active than the least active of them (`floor`), and
    then the least active half is dropped. A key whose changes were not kept, or dropped, is
    `incomplete`: if it is shown in the end, the changes before it was taken in are missing from it.
    (So the thousands of clients of one connection each do not churn the series of the servers.)"""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.activity: dict[Any, int] = {}
        self.buckets: dict[Any, dict[int, list[int]]] = {}
        self.incomplete: set[Any] = set()
        self.floor = 0  # no more than the least activity of a kept key, once 2 * keep are kept

    def active(self, key: Any) -> None:
        self.activity[key] = self.activity.get(key, 0) + 1

    def series(self, key: Any) -> dict[int, list[int]] | None:
        """The key's changes by bucket (for `_bump`), kept from now on if they were not and the key is
        active enough; None when they are not kept."""
        per_key = self.buckets.get(key)
        if per_key is None:
            if len(self.buckets) >= 2 * self.keep:
                if self.activity.get(key, 0) <= self.floor:
                    self.incomplete.add(key)
                    return None
                self._shrink()
            per_key = self.buckets[key] = {}
        return per_key

    def _shrink(self) -> None:
        ranked = sorted(self.buckets, key=lambda k: self.activity.get(k, 0), reverse=True)
        for key in ranked[self.keep :]:
            del self.buckets[key]
            self.incomplete.add(key)
        self.floor = min((self.activity.get(k, 0) for k in ranked[: self.keep]), default=0)

    def top(self, n: int) -> list[Any]:
        """The n most active keys kept (at equal activity, those followed from their start first)."""
        return sorted(self.buckets, key=lambda k: (-self.activity.get(k, 0), k in self.incomplete, _host_order(k)))[:n]


WIDTHS: tuple[float, ...] = (
    0.001,
    0.002,
    0.01,
    0.02,
    0.1,
    0.2,
    1.0,
    2.0,
    10.0,
    20.0,
    60.0,
    120.0,
    600.0,
    1200.0,
    3600.0,
    7200.0,
    21600.0,
    43200.0,
    86400.0,
)
"""The widths a timeline with max_buckets goes through: each a whole multiple of the one before. (Not
Final: compiled by mypyc 2.4, a Final tuple of floats read in a method raises NameError.)"""


def coarsen(series: dict[int, list[int]], factor: int) -> dict[int, list[int]]:
    """The series with `factor` buckets merged into one (their values added): a change at bucket b is
    one at b // factor, exactly where a bucket `factor` times as wide puts it."""
    merged: dict[int, list[int]] = {}
    for bucket, values in series.items():
        into = merged.get(bucket // factor)
        if into is None:
            merged[bucket // factor] = list(values)
        else:
            for i, value in enumerate(values):
                into[i] += value
    return merged


def _bump(series: dict[int, list[int]], bucket: int, index: int, amount: int, width: int) -> None:
    """Add `amount` to value `index` of the bucket's `width` values in a series."""
    values = series.get(bucket)
    if values is None:
        values = series[bucket] = [0] * width
    values[index] += amount


def _event(series: dict[int, list[int]], ts: float | None, width: float, index: int) -> None:
    """Count an event of a service (a SYN, a FIN...) in its bucket, if it happened."""
    if ts is not None:
        _bump(series, math.floor(ts / width), index, 1, _SERVICE_WIDTH)


def _host_order(key: Any) -> tuple[int, bytes, int]:
    if isinstance(key, bytes):
        return (len(key), key, -1)
    return (len(key[0]), key[0], key[1])


class Timeline:
    """A flow sink: per time bucket, the sockets of the most active hosts in each state at the bucket's end,
    and per most active service (server ip:port) its sockets and the SYNs, SYN-ACKs, completed handshakes,
    RSTs and FINs in the bucket (counted once per connection and side: retransmissions are not counted)."""

    @classmethod
    def attach(cls, auditor: Auditor, bucket_s: float = 1.0, top: int = 10, max_buckets: int = 0) -> Timeline:
        """A timeline fed by `auditor` (its TIME_WAIT length), which is told to keep the state changes."""
        timeline = cls(auditor.config.time_wait, bucket_s, top, max_buckets=max_buckets)
        auditor.tracker.record_state_changes = True
        auditor.add_flow_sink(timeline)
        return timeline

    def __init__(
        self,
        time_wait_s: float,
        bucket_s: float = 1.0,
        top: int = 10,
        timers: SocketTimers = LINUX,
        max_buckets: int = 0,
    ) -> None:
        self.time_wait_s = time_wait_s
        self.bucket_s = bucket_s
        self.top = top
        self.timers = timers
        keep = max(4 * top, 16)
        self.hosts = _Tracked(keep)  # values per bucket: the states (_N)
        self.services = _Tracked(keep)  # the states, then the events (_SERVICE_WIDTH)
        self.listen_since: dict[tuple[bytes, int], float] = {}
        # max_buckets > 0: the bucket widens (along WIDTHS) whenever the capture would span more buckets (for
        # plots of a capture of unknown length); `coarsened` is told the factor, for series kept beside these
        self.max_buckets = max_buckets
        self.first_bucket: int | None = None
        self.last_bucket = 0
        self.coarsened: list[Callable[[int], None]] = []

    def _cover(self, start: float, end: float) -> None:
        """Make the buckets wide enough for the capture to span at most max_buckets of them."""
        first, last = self.bucket(start), self.bucket(end)
        if self.first_bucket is None or first < self.first_bucket:
            self.first_bucket = first
        if last > self.last_bucket:
            self.last_bucket = last
        while self.last_bucket - self.first_bucket >= self.max_buckets:
            wider = self.bucket_s * 2  # (past the last of WIDTHS)
            for width in WIDTHS:
                if width > self.bucket_s * 1.0001:
                    wider = width
                    break
            factor = round(wider / self.bucket_s)
            self.bucket_s = wider
            self.first_bucket //= factor
            self.last_bucket //= factor
            for tracked in (self.hosts, self.services):
                for key, series in tracked.buckets.items():
                    tracked.buckets[key] = coarsen(series, factor)
            for follow in self.coarsened:
                follow(factor)

    def bucket(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def __call__(self, record: FlowRecord) -> None:
        hosts, services = self.hosts, self.services
        service = (record.server_ip, record.server_port)
        hosts.active(record.client_ip)
        hosts.active(record.server_ip)
        services.active(service)
        facts = record.facts
        if facts.synack_ts is not None and facts.synack_ts < self.listen_since.get(service, INFINITY):
            self.listen_since[service] = facts.synack_ts
        if self.max_buckets:
            self._cover(record.start, record.finalised_at)
        width = self.bucket_s
        service_series = services.series(service)
        host_key: Key | None = None
        host_series: dict[int, list[int]] | None = None
        for key, column, start, until, weight in socket_spans(record, self.time_wait_s, self.timers):
            first = math.floor(start / width)
            last = math.floor(until / width) if until < INFINITY else first - 1
            if first == last:
                continue  # begun and ended within one bucket: never there at a bucket's end
            if key is not host_key:
                host_key, host_series = key, hosts.series(key[0])
            if host_series is not None:
                _bump(host_series, first, column, weight, _N)
                if last > first:
                    _bump(host_series, last, column, -weight, _N)
            if key[2] == "server":
                series = (
                    service_series
                    if key[0] == service[0] and key[1] == service[1]
                    else services.series((key[0], key[1]))
                )
                if series is not None:
                    _bump(series, first, column, weight, _SERVICE_WIDTH)
                    if last > first:
                        _bump(series, last, column, -weight, _SERVICE_WIDTH)
        if service_series is None:
            return
        _event(service_series, facts.syn_ts, width, _N)
        _event(service_series, facts.synack_ts, width, _N + 1)
        _event(service_series, facts.handshake_done_ts, width, _N + 2)
        _event(service_series, facts.client_rst_ts, width, _N + 3)
        _event(service_series, facts.server_rst_ts, width, _N + 3)
        _event(service_series, facts.client_fin_ts, width, _N + 4)
        _event(service_series, facts.server_fin_ts, width, _N + 4)

    def incomplete(self) -> list[str]:
        """The hosts and services shown whose early changes were dropped (see `_Tracked`)."""
        shown: list[tuple[bytes, int | None]] = [
            (h, None) for h in self.hosts.top(self.top) if h in self.hosts.incomplete
        ]
        shown += [s for s in self.services.top(self.top) if s in self.services.incomplete]
        return [format_ip(ip) if port is None else f"{format_ip(ip)}:{port}" for ip, port in shown]

    def rows(self, first: float | None, end: float | None) -> Iterator[dict[str, Any]]:
        """Rows in TIMELINE_COLUMNS order, bucket by bucket from the one holding `first` to the one holding
        `end`: for each shown host (port empty) its sockets by state, then for each shown service its
        sockets and events. A bucket in which nothing changed or happened for any of them is left out
        (its counts are the previous row's: captures days apart make no rows for the days between).
        Nothing when the capture had no packet."""
        _last.forget()
        if first is None or end is None:
            return
        first_bucket, last_bucket = self.bucket(first), self.bucket(end)
        series: list[tuple[bytes, int | None, dict[int, list[int]], int]] = []
        for host in self.hosts.top(self.top):
            series.append((host, None, self.hosts.buckets[host], _N))
        for ip, port in self.services.top(self.top):
            series.append((ip, port, self.services.buckets[(ip, port)], _N + len(EVENT_COLUMNS)))
        series.sort(key=lambda s: (len(s[0]), s[0], -1 if s[1] is None else s[1]))
        listening: list[list[int]] = []  # per series: the bucket each of its listening ports starts in
        for ip, port, _, _ in series:
            listening.append(
                sorted(
                    self.bucket(since)
                    for (lip, lport), since in self.listen_since.items()
                    if lip == ip and (port is None or lport == port)
                )
            )
        # the populations before the first bucket shown (a span may start before the first packet: never;
        # a bucket before it holds nothing), then bucket by bucket
        running = [[0] * _N for _ in series]
        for values, (_, _, buckets, _) in zip(running, series, strict=True):
            for bucket, earlier in buckets.items():
                if bucket < first_bucket:
                    for i in range(_N):
                        values[i] += earlier[i]
        # the buckets where something changed or happened for a shown series, and the first and last
        buckets_shown = {first_bucket, last_bucket}
        for (_, _, buckets, _), starts in zip(series, listening, strict=True):
            buckets_shown.update(b for b in buckets if first_bucket <= b <= last_bucket)
            buckets_shown.update(b for b in starts if first_bucket <= b <= last_bucket)
        for bucket in sorted(buckets_shown):
            start = bucket * self.bucket_s
            time_text = iso_utc(start)
            for n, (ip, port, buckets, _) in enumerate(series):
                values = running[n]
                changes = buckets.get(bucket)
                if changes is not None:
                    for i in range(_N):
                        values[i] += changes[i]
                values[LISTEN] = sum(1 for b in listening[n] if b <= bucket)
                row: dict[str, Any] = {"time": time_text, "time_epoch": start, "host": format_ip(ip), "port": port}
                row.update(zip(STATE_COLUMNS, values, strict=True))
                if port is None:
                    row.update(dict.fromkeys(EVENT_COLUMNS))
                else:
                    events = changes[_N:] if changes is not None else [0] * len(EVENT_COLUMNS)
                    row.update(zip(EVENT_COLUMNS, events, strict=True))
                yield row


# ---------------------------------------------------------------------- the table format
def render_sockets(
    title: str, columns: tuple[str, ...], rows: list[dict[str, Any]], style: TableStyle
) -> Iterator[str]:
    """The socket table or the timeline for people: the state and event columns that are 0 or empty in
    every row are left out (a note under the table names them), and so is `time_epoch`."""
    if not rows:
        return titled(title, ["(none)"], style)
    shown = [
        c
        for c in columns
        if c != "time_epoch" and (c not in STATE_COLUMNS + EVENT_COLUMNS or any(row.get(c) for row in rows))
    ]
    left_out = [c for c in STATE_COLUMNS + EVENT_COLUMNS if c in columns and c not in shown]
    table = [Column(c, n) for n, c in enumerate(shown)]
    lines = render(table, rows, lambda row: [printable(row.get(c)) for c in shown], style)
    note = [f"(0 in every row: {', '.join(left_out)})"] if left_out else []
    return titled(title, itertools.chain(lines, note), style)
