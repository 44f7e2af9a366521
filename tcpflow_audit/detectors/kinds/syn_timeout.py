"""`syn_timeout`: a connection attempt whose SYNs got no reply at all (Zeek S0).

**TCP:** the client stays in SYN_SENT, retransmitting its SYN with the same initial sequence number
(Linux: 1 s, 2 s, 4 s..., `tcp_syn_retries` = 6, ~127 s) and nothing comes back.

**Rule:** an attempt is a client's SYN sequence on one 4-tuple with one ISN. Zeek's attempt timer ends
an unanswered connection 5 s after its SYN, so the later retransmissions of a long attempt start new
connections (each S0) in the flows report, as does a SYN after a FIN or RST on the 4-tuple: they are
joined back to their attempt by 4-tuple and ISN (within 240 s, two maximal retransmission timeouts).
An attempt is reported when it got no packet at all from the server, carried no data, and its SYN was
retransmitted at least `syn_timeout_retries` times over at least 0.1 s (copies closer together are
duplicates in the capture, not a timeout). Memory: an attempt whose first connection ended after one SYN
(a spoofed flood's, or a scan's) is kept as a small tuple, at most `_MAX_ATTEMPTS` of them (the oldest
go first: under a flood of more, a later connection of such an attempt is not joined to it); a client's
own attempt retransmits its SYN within the attempt timer, so its first connection already holds two.
Every connection of a reported attempt is tagged; `count`
is the number of attempts, the detail gives the SYN retransmissions and the connections.

**Severity:** warning.
"""

from __future__ import annotations

import math
from itertools import islice
from typing import Any, Final

from ...connection import FlowRecord
from ...decode import format_ip
from ..base import HANDSHAKE_INCOMPLETE, CappedSet, Context, Detector, Finding, Setting, plural

KIND: Final = "syn_timeout"
ORDER: Final = 40
SETTINGS: Final = (
    Setting(
        "syn_timeout_retries",
        1,
        "one SYN retransmission proves the first SYN went a full RTO (Linux: 1 s) without any reply",
    ),
)
_MIN_SPAN: Final = 0.1  # SYN copies closer together than this are the same SYN captured twice
_HORIZON: Final = 240.0  # an attempt's next SYN comes within 2 x TCP_RTO_MAX (120 s) or never
_MAX_ATTEMPTS: Final = 65536  # attempts remembered (memory bound under floods; the oldest go first)
# (singles: when there are _MAX_ATTEMPTS, the oldest quarter go at once)


class _Attempt:
    __slots__ = ("isn", "first", "last", "syns", "connections", "reported")

    def __init__(self, isn: int, first: float) -> None:
        self.isn = isn
        self.first = first
        self.last = first
        self.syns = 0
        self.connections = 0
        self.reported = False


# an attempt of one connection with one SYN, not reported: (isn, first SYN, its client's last packet)
# (of objects, Any: mypyc boxes a tuple of native numbers anew, the record's own objects are shared)
_Single = tuple[Any, Any, Any]


class _Row:
    """The attempts of one server ip:port that got no reply."""

    __slots__ = (
        "attempts",
        "syns",
        "most",
        "connections",
        "first",
        "last",
        "clients",
        "example",
        "client_ip",
        "client_port",
        "many_ports",
    )

    def __init__(self) -> None:
        self.attempts = self.syns = self.most = self.connections = 0
        self.first = math.inf
        self.last = -math.inf
        self.clients = CappedSet()
        self.example = math.inf  # the earliest attempt's first SYN, its client ip:port
        self.client_ip = b""
        self.client_port = 0
        self.many_ports = False

    def merge(self, o: _Row) -> None:
        self.attempts += o.attempts
        self.syns += o.syns
        self.most = max(self.most, o.most)
        self.connections += o.connections
        self.first = min(self.first, o.first)
        self.last = max(self.last, o.last)
        self.clients.merge(o.clients)
        self.many_ports = (
            self.many_ports
            or o.many_ports
            or (bool(self.attempts - o.attempts) and (o.client_ip, o.client_port) != (self.client_ip, self.client_port))
        )
        if (o.example, o.client_ip, o.client_port) < (self.example, self.client_ip, self.client_port):
            self.example, self.client_ip, self.client_port = o.example, o.client_ip, o.client_port


class SynTimeout(Detector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, HANDSHAKE_INCOMPLETE, context)
        self.retries: int = t.syn_timeout_retries
        self.attempts: dict[tuple[bytes, int, bytes, int], _Attempt] = {}  # oldest first
        self.singles: dict[tuple[bytes, int, bytes, int], _Single] = {}  # oldest first
        self.rows: dict[int, _Row] = {}  # by service id

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        if f.syn_ts is None or f.synack_ts is not None or r.server_packets or f.bad_synack or f.client_payload_packets:
            return False
        key = (r.client_ip, r.client_port, r.server_ip, r.server_port)
        isn = f.client_isn if f.client_isn is not None else -1
        syns = 1 + f.syn_retransmits
        attempt = self.attempts.pop(key, None)
        if attempt is None:
            single = self.singles.pop(key, None)
            if single is not None:
                attempt = _Attempt(single[0], single[1])
                attempt.last = single[2]
                attempt.syns = attempt.connections = 1
        if attempt is None or attempt.isn != isn or f.syn_ts < attempt.last:
            if syns == 1 and (self.retries > 0 or f.client_last_ts - f.syn_ts < _MIN_SPAN):
                # one SYN, not reported: a compact record until a later connection joins it
                if len(self.singles) >= _MAX_ATTEMPTS:
                    self._drop_singles(_MAX_ATTEMPTS // 4)
                syn: Any = f.syn_ts
                isn_object: Any = f.client_isn if f.client_isn is not None else -1
                self.singles[key] = (isn_object, syn, syn if f.client_last_ts <= syn else f.client_last_ts)
                return False
            attempt = _Attempt(isn, f.syn_ts)
        elif len(self.attempts) >= _MAX_ATTEMPTS:
            del self.attempts[next(iter(self.attempts))]
        self.attempts[key] = attempt  # (last: the most recently seen)
        attempt.syns += syns
        attempt.connections += 1
        attempt.last = max(attempt.last, f.client_last_ts)
        connections = 1
        if not attempt.reported:
            if attempt.syns - 1 < self.retries or attempt.last - attempt.first < _MIN_SPAN:
                return False
            attempt.reported = True
            # every SYN and connection of the attempt so far (an earlier connection, ended before the attempt
            # showed a retransmission, is counted but was not tagged: its flow row was written already)
            syns, connections = attempt.syns, attempt.connections
            if sid >= 0:
                row = self._row(sid)
                row.attempts += 1
                row.clients.add(r.client_ip)
                if row.attempts > 1 and (r.client_ip, r.client_port) != (row.client_ip, row.client_port):
                    row.many_ports = True
                if (attempt.first, r.client_ip, r.client_port) < (row.example, row.client_ip, row.client_port):
                    row.example, row.client_ip, row.client_port = attempt.first, r.client_ip, r.client_port
        if sid >= 0:
            row = self._row(sid)
            row.syns += syns
            row.connections += connections
            row.most = max(row.most, attempt.syns - 1)
            row.first = min(row.first, attempt.first)
            row.last = max(row.last, attempt.last)
        return True

    def _row(self, sid: int) -> _Row:
        row = self.rows.get(sid)
        if row is None:
            row = self.rows[sid] = _Row()
        return row

    def prune(self, latest: float) -> None:
        attempts = self.attempts
        while attempts:
            key = next(iter(attempts))
            if attempts[key].last >= latest - _HORIZON:
                break
            del attempts[key]
        expired = 0
        for single in self.singles.values():
            if single[2] >= latest - _HORIZON:
                break
            expired += 1
        if expired:
            self._drop_singles(expired)

    def _drop_singles(self, n: int) -> None:
        """Forget the `n` oldest singles. The dict is built anew: deleting its first entries one by one
        leaves holes each later look at the first entry walks over (quadratic under a flood)."""
        self.singles = dict(islice(self.singles.items(), n, None))

    def merge(self, other: Any, ids: list[int]) -> None:
        for theirs, row in other.rows.items():
            if ids[theirs] >= 0:
                self._row(ids[theirs]).merge(row)
        for key, attempt in other.attempts.items():
            mine = self.attempts.get(key)
            if mine is None or attempt.last > mine.last:
                self.attempts[key] = attempt
                self.singles.pop(key, None)
        for key, single in other.singles.items():
            if key in self.attempts:
                continue  # (an attempt of two connections on this side: the later one)
            found = self.singles.get(key)
            if found is None or single[2] > found[2]:
                self.singles[key] = single

    def findings(self) -> list[Finding]:
        out = []
        for sid, row in self.rows.items():
            ip, port = self.services.keys[sid]
            one = row.attempts == 1
            retransmitted = row.syns - row.attempts
            if one:
                detail = (
                    "SYN sent %s over %.1f s with no reply at all (SYN retransmitted %s; dropped or filtered "
                    "on the way to the server)"
                    % (plural(row.syns, "time"), row.last - row.first, plural(retransmitted, "time"))
                )
            else:
                who = (
                    "from " + format_ip(next(iter(row.clients.items)))
                    if len(row.clients.items) == 1 and not row.clients.capped
                    else "from %s clients" % row.clients.text()
                )
                detail = (
                    "%d connection attempts %s over %.1f s got no reply at all; SYN retransmitted %d times in "
                    "all (at most %d for one attempt)"
                    % (row.attempts, who, row.last - row.first, retransmitted, row.most)
                )
            if row.connections > row.attempts:
                detail += (
                    "; %d connections in the flows report (the later SYNs of an attempt start a new one "
                    "after Zeek's attempt timer, 5 s, or after a FIN or RST)" % row.connections
                )
            one_client = len(row.clients.items) == 1 and not row.clients.capped
            out.append(
                Finding(
                    KIND,
                    "warning",
                    row.first,
                    row.last,
                    format_ip(row.client_ip) if one_client else "",
                    row.client_port if one and not row.many_ports else None,
                    format_ip(ip),
                    port,
                    row.attempts,
                    detail,
                )
            )
        return out


DETECTOR: Final = SynTimeout
