"""The connection table: which connection each segment belongs to, and when connections end.

Segments are matched to a connection by their 4-tuple (both directions map to the same
object). A SYN with a new ISN on a 4-tuple whose connection has closed starts a new
connection (port reuse), by Zeek's IsReuse rule. Connections are finalised by Zeek's timers
(attempt, close delay, dead-connection check, inactivity), evaluated in capture time before
each packet, so memory is bounded by live connections; a hard cap evicts the oldest if
hostile traffic would grow the table past it. Every finished connection is handed, as a
`FlowRecord`, to the `on_flow` callback (and any other in `flow_sinks`) in the order it was finalised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from . import zeek_states as z
from .config import EngineConfig
from .connection import ACK, PENDING_ATTEMPT, PENDING_DELETE, PENDING_EXPIRE, SYN, Connection, FlowRecord, TimeWait
from .decode import tunnel_key
from .timers import TimerQueue

if TYPE_CHECKING:  # native 64-bit integers for the compiled build; plain int to Python
    from mypy_extensions import i64

FlowSink = Callable[[FlowRecord], None]


IPV6_KEY: Final = 1 << 48
"""Set in the `address_key` of an IPv6 address (an IPv4 one stays below it)."""


def address_key(ip: bytes, port: int) -> int:
    """One integer for an address and port, as the fast index keys connections by them: the IPv4
    address and the port exactly (48 bits), or IPV6_KEY, the IPv6 address folded to 32 bits and
    the port (then the address itself must be compared too)."""
    return address_key_at(ip, 0, len(ip), port)


def address_key_at(buf: bytes, at: int, size: int, port: int) -> int:
    """`address_key` of the `size`-byte address at buf[at:], read in place."""
    if size == 4:
        return (buf[at] << 24 | buf[at + 1] << 16 | buf[at + 2] << 8 | buf[at + 3]) << 16 | port
    return IPV6_KEY | fold_ipv6(buf, at) << 16 | port


def fast_key(sender: i64, receiver: i64) -> i64:
    """The fast index's key for a segment from `sender` to `receiver` (two `address_key`s): the same
    either way round, so a connection takes one entry."""
    if sender < receiver:
        return sender << 12 ^ receiver
    return receiver << 12 ^ sender


def _time_wait_keys(src: bytes, sport: int, dst: bytes, dport: int) -> tuple[object, object | None]:
    """How `recent_time_wait` keys a 4-tuple: an IPv4 one by one integer that is the same either
    way round (both address keys, the lower first: exact), anything else by the tuple and its
    reverse; a lookup uses the first key."""
    if len(src) == 4 and len(dst) == 4:
        sender, receiver = address_key(src, sport), address_key(dst, dport)
        return (sender << 48 | receiver if sender < receiver else receiver << 48 | sender), None
    return (src, sport, dst, dport), (dst, dport, src, sport)


def _connection_time_wait_keys(key: tuple) -> tuple[object, object | None]:
    """`_time_wait_keys` of a connection's key: a tunnelled one's (5 items) with its tunnel path."""
    either_way, other_way = _time_wait_keys(key[0], key[1], key[2], key[3])
    if len(key) == 5:
        return (either_way, key[4]), None if other_way is None else (other_way, key[4])
    return either_way, other_way


RECENT_SLOTS: Final = 4096
RECENT_MASK: Final = RECENT_SLOTS - 1


def recent_slot(sender: i64, receiver: i64) -> i64:
    """Where `ConnectionTracker.recent` keeps the connection between two address keys (either way round)."""
    return (sender ^ receiver ^ (sender >> 20) ^ (receiver >> 20)) & RECENT_MASK


def _joins(conn: Connection, sender: i64, receiver: i64) -> bool:
    """Whether the connection's endpoints have these two address keys, either way round."""
    orig, resp = conn.orig.addr_key, conn.resp.addr_key
    return (orig == sender and resp == receiver) or (resp == sender and orig == receiver)


def _no_connection() -> Connection:
    """A connection no segment matches (its endpoints are the released stand-in): `recent`'s empty slots."""
    conn = Connection(0.0, b"", 0, b"", 0, False, False)
    conn.release()
    return conn


_NO_CONNECTION: Final = _no_connection()


def _forget(index: dict, key: object, value: object) -> None:
    """Remove key from index if it still leads to value (a newer entry may have taken its place)."""
    if index.get(key) is value:
        del index[key]


def fold_ipv6(buf: bytes, at: int) -> int:
    """The 16 bytes of an IPv6 address at buf[at:] folded to 32 bits (their four words XORed)."""
    folded = 0
    for word in range(at, at + 16, 4):
        folded ^= buf[word] << 24 | buf[word + 1] << 16 | buf[word + 2] << 8 | buf[word + 3]
    return folded


def _same_address(buf: bytes, at: int, ip: bytes) -> bool:
    """buf[at:at + len(ip)] == ip, compared in place."""
    for i in range(len(ip)):
        if buf[at + i] != ip[i]:
            return False
    return True


class ConnectionTracker:
    def __init__(
        self,
        config: EngineConfig | None = None,
        on_flow: FlowSink | None = None,
        reference: bool = False,
        by_fast_key: bool = False,
    ) -> None:
        self.config = config or EngineConfig()
        self.reference = reference  # True: every segment through Connection.process (no hot path)
        # True: keep connections by fast key (`fast_index`), as the fast lane looks them up; False:
        # by 4-tuple (`table`), as `packet` looks them up fastest in the pure Python build
        self.by_fast_key = by_fast_key
        # called with every finished connection's record, in order (`pipeline.Auditor` shares this list)
        self.flow_sinks: list[FlowSink] = [] if on_flow is None else [on_flow]
        # live connections by their 4-tuple (both directions): all of them, or with by_fast_key only
        # those the fast index could not take
        self.table: dict[tuple, Connection] = {}
        # every live connection in creation order (for eviction and the final flush), and behind them
        # finished ones not yet dropped: a finished connection leaves when it reaches the front or at
        # the next compaction (`_compact`), so dropping one costs O(1) wherever it lies (deleting from
        # the front of a dict would leave dead slots that every later look for the oldest walks again)
        self.creation_order: deque[Connection] = deque()
        self.live_count = 0
        self.timers = TimerQueue()
        self._dead_timer_owners = 0
        # with by_fast_key, the other live connections (nearly all), keyed by one integer the fast
        # lane computes without making objects: fast_key(address_key(sender), address_key(receiver))
        # (`fast_packet`); a key is not one to one, so a connection found here is checked against
        # the segment's addresses
        self.fast_index: dict[int, Connection] = {}
        # in front of fast_index: by a hash of the two address keys that is the same both ways, the
        # connection a segment last found there (a dict lookup boxes and hashes the key; this is
        # one list index). A slot is trusted only when the endpoints' address keys are the
        # segment's: only a connection in fast_index has them (a finished one has let go of its
        # endpoints, see Connection.release), and it is the one fast_index would give.
        self.recent: list[Connection] = [_NO_CONNECTION] * RECENT_SLOTS
        # 4-tuple -> the TIME_WAIT its finalised connection left, while it lasts (`_time_wait_keys`)
        self.recent_time_wait: dict[object, TimeWait] = {}
        # the same entries in the order they were recorded, with their keys: expired ones are
        # dropped from the front (an entry that outlives the ones behind it only delays their purge)
        self._time_wait_order: deque[tuple[TimeWait, object, object]] = deque()
        # keep each endpoint's RFC state changes for the records (`sockets` needs them; off, they cost
        # a list and a tuple per change)
        self.record_state_changes = False
        self.connections_seen = 0
        self.evicted = 0
        self.peak_live = 0
        self.now = 0.0

    @property
    def live(self) -> list[Connection]:
        """The live connections, in creation order."""
        return [conn for conn in self.creation_order if not conn.finished]

    # ------------------------------------------------------------------ per packet
    def packet(
        self,
        ts: float,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        length: int,
        checksum_ok: bool = True,
        tunnel: str = "",
    ) -> Connection:
        """One TCP segment; `tunnel` is its tunnel path (`Decoder.tunnel`), part of the connection's identity."""
        if ts > self.now:
            self.now = ts
        if self.timers.next_due < ts:
            self._run_timers(ts)
        if tunnel:  # (tunnelled connections live in `table` only, keyed with the tunnel)
            conn = self.table.get((src, sport, dst, dport, tunnel_key(tunnel)))
        else:
            conn = self._lookup(src, sport, dst, dport)
        if conn is not None and not flags & 0x07 and checksum_ok and not self.reference:
            # Hot path: no SYN/FIN/RST on a known connection (most packets of a busy capture).
            orig = conn.orig
            if orig.port == sport and orig.ip == src:
                endpoint, peer = orig, conn.resp
            else:
                endpoint, peer = conn.resp, orig
            if endpoint.zstate != z.INACTIVE:
                conn._ordinary_segment(ts, endpoint, peer, seq, ack, flags, window, length)
                return conn
        if conn is not None and flags & SYN and self._is_reuse(conn, flags, seq):
            self._finish(conn, "reused", ts)
            conn = None
        if conn is None:
            conn = self._new_connection(ts, src, sport, dst, dport, flags, tunnel)
        is_orig = conn.orig.port == sport and conn.orig.ip == src
        conn.process(ts, is_orig, seq, ack, flags, window, length, checksum_ok)
        if conn.pending_timers:
            self._schedule_pending(conn)
        return conn

    def fast_packet(
        self,
        ts: float,
        sender: i64,
        receiver: i64,
        seq: i64,
        ack: i64,
        flags: i64,
        window: i64,
        length: i64,
        buf: bytes = b"",
        ip6: i64 = -1,
    ) -> bool:
        """`packet` for the fast lane's segments, each side's address and port as one integer
        (`address_key`; for IPv6, ip6 is where the IPv6 header lies in buf, to check the addresses).

        Takes every segment of a known connection except a SYN (which may start a new connection
        on the 4-tuple), doing exactly what `packet` does with it, and returns True; returns False,
        having done nothing that `packet` would not do first anyway (advance the clock, run due
        timers), for the others: the caller then hands them to `packet`.
        """
        if flags & SYN or self.reference:
            return False
        if ts > self.now:
            self.now = ts
        if self.timers.next_due < ts:
            self._run_timers(ts)
        # the connection this slot of `recent` last led to, if the segment is its; else the index's
        slot = recent_slot(sender, receiver)
        conn = self.recent[slot]
        orig_key, resp_key = conn.orig.addr_key, conn.resp.addr_key  # (_joins, written out: every packet)
        if not ((orig_key == sender and resp_key == receiver) or (resp_key == sender and orig_key == receiver)):
            found = self.fast_index.get(fast_key(sender, receiver))
            if found is None or not _joins(found, sender, receiver):
                return False  # none, or another connection with the same fast key: the tuple table decides
            conn = self.recent[slot] = found
        if conn.orig.addr_key == sender:
            endpoint, peer, is_orig = conn.orig, conn.resp, True
        else:
            endpoint, peer, is_orig = conn.resp, conn.orig, False
        if ip6 >= 0 and not (_same_address(buf, ip6 + 8, endpoint.ip) and _same_address(buf, ip6 + 24, peer.ip)):
            return False  # an IPv6 key folds the address: another connection's, the tuple table decides
        if not flags & 0x07 and endpoint.zstate != z.INACTIVE:
            conn._ordinary_segment(ts, endpoint, peer, seq, ack, flags, window, length)
        else:  # FIN or RST, or the first segment Zeek sees from this endpoint: as `packet` does
            conn.process(ts, is_orig, seq, ack, flags, window, length, True)
            if conn.pending_timers:
                self._schedule_pending(conn)
        return True

    def flush(self) -> None:
        """End of input: finalise every live connection (in creation order); no SYN can arrive in a
        TIME_WAIT any more, so their entries go too (freed now, not walked by the cyclic collector)."""
        for conn in self.creation_order:
            self._finish(conn, "capture_end", self.now)
        self.creation_order.clear()
        self.timers.clear()
        self.recent = [_NO_CONNECTION] * RECENT_SLOTS
        self.recent_time_wait.clear()
        self._time_wait_order.clear()

    # ------------------------------------------------------------------ connections
    def _new_connection(
        self, ts: float, src: bytes, sport: int, dst: bytes, dport: int, flags: int, tunnel: str = ""
    ) -> Connection:
        config = self.config
        if self.live_count >= config.max_connections:
            order = self.creation_order
            oldest = order.popleft()
            while oldest.finished:
                oldest = order.popleft()
            self.evicted += 1
            self._finish(oldest, "evicted", ts)
        flipped = z.should_flip(sport, dport, flags)
        midstream = not (flags & SYN and not flags & ACK)
        if flipped:
            conn = Connection(ts, dst, dport, src, sport, True, midstream)
        else:
            conn = Connection(ts, src, sport, dst, dport, False, midstream)
        if self.record_state_changes:
            conn.orig.state_changes = []
            conn.resp.state_changes = []
        key = (src, sport, dst, dport)
        conn.key = key
        if tunnel:
            conn.tunnel = tunnel
            route = tunnel_key(tunnel)
            conn.key = (src, sport, dst, dport, route)
            self.table[conn.key] = conn
            self.table[(dst, dport, src, sport, route)] = conn
        elif not (
            self.by_fast_key
            and len(src) == len(dst)
            and (len(src) == 4 or len(src) == 16)
            and self._index_fast(conn, src, sport, dst, dport)
        ):
            self.table[key] = conn
            self.table[(dst, dport, src, sport)] = conn
        self.creation_order.append(conn)
        self.live_count += 1
        self.connections_seen += 1
        if self.live_count > self.peak_live:
            self.peak_live = self.live_count
        if self.recent_time_wait:
            time_wait = self.recent_time_wait.get(_connection_time_wait_keys(conn.key)[0])
            if time_wait is not None and ts < time_wait.until and flags & SYN:
                conn.syn_in_time_wait = True
                conn.prev_time_wait = time_wait
        self.timers.push(ts + config.syn_timeout, conn, "expire", "expire after the first packet")
        self.timers.push(ts + config.inactivity_timeout, conn, "inactivity")
        return conn

    def _index_fast(self, conn: Connection, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        """Enter a connection in the fast index and give its endpoints their `addr_key`; False,
        doing nothing, when another live connection holds its key (this one then goes into
        `table`, and the fast lane sends its segments to `packet`)."""
        sender = address_key(src, sport)
        receiver = address_key(dst, dport)
        fast_index = self.fast_index
        key = fast_key(sender, receiver)
        if key in fast_index:
            return False
        fast_index[key] = conn
        src_endpoint, dst_endpoint = (
            (conn.resp, conn.orig) if conn.orig.port != sport or conn.orig.ip != src else (conn.orig, conn.resp)
        )
        src_endpoint.addr_key = sender
        dst_endpoint.addr_key = receiver
        return True

    def _lookup(self, src: bytes, sport: int, dst: bytes, dport: int) -> Connection | None:
        """The live connection on this 4-tuple (either direction), if any."""
        if self.by_fast_key and len(src) == len(dst) and (len(src) == 4 or len(src) == 16):
            conn = self.fast_index.get(fast_key(address_key(src, sport), address_key(dst, dport)))
            if conn is not None:
                orig, resp = conn.orig, conn.resp
                if (orig.port == sport and resp.port == dport and orig.ip == src and resp.ip == dst) or (
                    resp.port == sport and orig.port == dport and resp.ip == src and orig.ip == dst
                ):
                    return conn
        return self.table.get((src, sport, dst, dport)) if self.table else None

    @staticmethod
    def _is_reuse(conn: Connection, flags: int, seq: int) -> bool:
        """Zeek's TCPSessionAdapter::IsReuse for a SYN or SYN-ACK on an existing 4-tuple."""
        conn_orig = conn.orig
        if flags & ACK:
            if conn.orig.zstate != z.INACTIVE:
                return False
            conn_orig = conn.resp
        if not (conn.orig.did_close or conn.resp.did_close):
            if seq == conn_orig.start_seq:
                return False
            if (
                not flags & ACK
                and conn_orig.zstate == z.SYN_ACK_SENT
                and conn.resp.zstate == z.INACTIVE
                and seq == conn.resp.start_seq
            ):
                return False
        return True

    def _finish(self, conn: Connection, cause: str, now: float) -> None:
        if conn.finished:
            return
        conn.finished = True
        conn.end_cause = cause
        key = conn.key
        self.live_count -= 1
        sender, receiver = conn.orig.addr_key, conn.resp.addr_key
        if sender >= 0:  # in the fast index, whose key is its own while it lives
            del self.fast_index[fast_key(sender, receiver)]
        else:
            _forget(self.table, key, conn)
            _forget(self.table, (key[2], key[3], key[0], key[1], *key[4:]), conn)
        self._dead_timer_owners += 1
        if self._dead_timer_owners > 2 * self.live_count + 4096:
            self._compact()
        record = conn.to_record(now, self.config.time_wait)
        client_until, server_until = record.client_time_wait_until, record.server_time_wait_until
        if client_until or server_until:
            if (client_until or 0.0) >= (server_until or 0.0):
                until, holder, ip, port = client_until or 0.0, "client", record.client_ip, record.client_port
            else:
                until, holder, ip, port = server_until or 0.0, "server", record.server_ip, record.server_port
            if until > now:
                if client_until is not None and server_until is not None and min(client_until, server_until) > now:
                    holder = "both"
                time_wait = TimeWait(until, holder, ip, port)
                either_way, other_way = _connection_time_wait_keys(key)
                self.recent_time_wait[either_way] = time_wait
                if other_way is not None:
                    self.recent_time_wait[other_way] = time_wait
                self._time_wait_order.append((time_wait, either_way, other_way))
                self._purge_time_wait(now)
        for sink in self.flow_sinks:
            sink(record)
        conn.release()

    def _purge_time_wait(self, now: float) -> None:
        order = self._time_wait_order
        recent = self.recent_time_wait
        while order and order[0][0].until <= now:
            time_wait, either_way, other_way = order.popleft()
            _forget(recent, either_way, time_wait)
            if other_way is not None:
                _forget(recent, other_way, time_wait)

    # ------------------------------------------------------------------ timers
    def _compact(self) -> None:
        """Drop the timer entries and `creation_order` places of finished connections, so they do not keep
        those connections in memory (an inactivity timer lives 300 s of capture time): memory stays
        bounded by live connections, and the time this takes by the connections finished since the last time."""
        self.timers.drop_finished()
        self.creation_order = deque(conn for conn in self.creation_order if not conn.finished)
        self._dead_timer_owners = 0

    def _schedule_pending(self, conn: Connection) -> None:
        config = self.config
        pending, base = conn.pending_timers, conn.pending_base
        if pending & PENDING_ATTEMPT:
            self.timers.push(base + config.attempt_timeout, conn, "attempt")
        if pending & PENDING_DELETE:
            self.timers.push(base + config.close_delay, conn, "delete")
        if pending & PENDING_EXPIRE:
            self.timers.push(base + config.session_timer, conn, "expire")
        conn.pending_timers = 0

    def _run_timers(self, now: float) -> None:
        timers = self.timers
        config = self.config
        while True:
            entry = timers.pop_due_before(now)
            if entry is None:
                break
            due, conn, kind, generation = entry.due, entry.conn, entry.kind, entry.generation
            if conn.finished:
                continue
            if kind == "inactivity":
                if conn.last_time + config.inactivity_timeout <= due:
                    self._finish(conn, "timeout", due)
                else:
                    self.timers.push(conn.last_time + config.inactivity_timeout, conn, "inactivity")
                continue
            if generation != conn.timer_generation:
                continue
            if conn.timer_fires(kind, due, config.linger):
                self._finish(conn, "timeout", due)
            elif kind == "expire" and conn.zeek_active:
                next_due = due + config.session_timer
                if next_due < now:
                    # Nothing changes a connection's state between its packets: after a long gap (or an
                    # absurd timestamp jump) skip ahead on the timer's grid instead of stepping through it.
                    next_due += ((now - next_due) // config.session_timer) * config.session_timer
                self.timers.push(next_due, conn, "expire")
