"""The connection table: which connection each segment belongs to, and when connections end.

Every segment comes through `ConnectionTracker.segment` and is matched to a connection by its
4-tuple (both directions map to the same object; each side's address and port are one integer,
`address_key`, so the lookup makes no object), and a tunnelled one by its 4-tuple and tunnel path.
A SYN with a new ISN on a 4-tuple whose connection has closed starts a new connection (port
reuse), by Zeek's IsReuse rule. Connections are finalised by Zeek's timers
(attempt, close delay, dead-connection check, inactivity), evaluated in capture time before
each packet, so memory is bounded by live connections; a hard cap evicts the oldest if
hostile traffic would grow the table past it. Every finished connection is handed, as a
`FlowRecord`, to the `on_flow` callback (and any other in `flow_sinks`) in the order it was finalised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from . import tcp_states as rfc
from . import zeek_states as z
from .config import EngineConfig
from .connection import (
    ACK,
    PENDING_ATTEMPT,
    PENDING_DELETE,
    PENDING_EXPIRE,
    SYN,
    Connection,
    Endpoint,
    FlowRecord,
    TimeWait,
    needs_own_responder,
)
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
        return ipv4_key(buf[at] << 24 | buf[at + 1] << 16 | buf[at + 2] << 8 | buf[at + 3], port)
    return IPV6_KEY | fold_ipv6(buf, at) << 16 | port


def ipv4_key(address: i64, port: i64) -> i64:
    """`address_key` of an IPv4 address read as an integer."""
    return address << 16 | port


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


def _connection_key(conn: Connection) -> tuple:
    """The connection's 4-tuple, originator first (and its tunnel's key when tunnelled): how `table`
    and `recent_time_wait` know it, in both directions (so the order does not matter)."""
    orig, resp = conn.orig, conn.resp
    tunnel = conn.seen_uncommon().tunnel
    if tunnel:
        return (orig.ip, orig.port, resp.ip, resp.port, tunnel_key(tunnel))
    return (orig.ip, orig.port, resp.ip, resp.port)


def _connection_time_wait_keys(key: tuple) -> tuple[object, object | None]:
    """`_time_wait_keys` of a connection's key: a tunnelled one's (5 items) with its tunnel path."""
    either_way, other_way = _time_wait_keys(key[0], key[1], key[2], key[3])
    if len(key) == 5:
        return (either_way, key[4]), None if other_way is None else (other_way, key[4])
    return either_way, other_way


# A SYN's responder that has not answered is a stand-in Endpoint shared by every embryonic connection to
# its address (ConnectionTracker.segment): at most this many addresses are remembered for sharing.
STAND_IN_SLOTS: Final = 4096
# The IPv4 addresses of recent connections, kept so that new connections from or to one address share
# its bytes object (48 bytes each) instead of a copy each (ConnectionTracker.ipv4_address): at most this many.
ADDRESS_SLOTS: Final = 4096
RECENT_SLOTS: Final = 4096
RECENT_MASK: Final = RECENT_SLOTS - 1


def recent_slot(sender: i64, receiver: i64) -> i64:
    """Where `ConnectionTracker.recent` keeps the connection between two address keys (either way round)."""
    return (sender ^ receiver ^ (sender >> 20) ^ (receiver >> 20)) & RECENT_MASK


def _joins(conn: Connection, sender: i64, receiver: i64, buf: bytes, at: i64, size: i64) -> bool:
    """Whether the connection is between these two sides, either way round: the endpoints' address
    keys are the segment's (exact for IPv4), and for IPv6 (whose keys fold the address) so are the
    addresses at buf[at:] (sender's, then receiver's)."""
    orig, resp = conn.orig, conn.resp
    orig_key, resp_key = orig.addr_key, resp.addr_key
    if orig_key == sender and resp_key == receiver:
        return size == 4 or (_same_address(buf, at, orig.ip) and _same_address(buf, at + size, resp.ip))
    if resp_key == sender and orig_key == receiver:
        return size == 4 or (_same_address(buf, at, resp.ip) and _same_address(buf, at + size, orig.ip))
    return False


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


@final
class ConnectionTracker:
    def __init__(self, config: EngineConfig | None = None, on_flow: FlowSink | None = None) -> None:
        self.config = config or EngineConfig()
        # called with every finished connection's record, in order (`pipeline.Auditor` shares this list)
        self.flow_sinks: list[FlowSink] = [] if on_flow is None else [on_flow]
        # live connections by one integer made without objects from the segment's two `address_key`s,
        # `fast_key(sender, receiver)` (nearly all of them); a key is not one to one, so a connection
        # found here is checked against the segment's addresses
        self.fast_index: dict[int, Connection] = {}
        # the live connections whose fast key another live connection holds, by their 4-tuple (both
        # directions): empty but under unlucky (or hostile) addresses
        self.table: dict[tuple, Connection] = {}
        # every live connection in creation order (for eviction and the final flush), and behind them
        # finished ones not yet dropped: a finished connection leaves when it reaches the front or at
        # the next compaction (`_compact`), so dropping one costs O(1) wherever it lies (deleting from
        # the front of a dict would leave dead slots that every later look for the oldest walks again)
        self.creation_order: deque[Connection] = deque()
        self.live_count = 0
        self.timers = TimerQueue()
        self._dead_timer_owners = 0
        # in front of fast_index: by a hash of the two address keys that is the same both ways, the
        # connection a segment last found (a dict lookup boxes and hashes the key; this is one list
        # index). A slot is trusted only when the endpoints' address keys are the segment's (and, for
        # IPv6, whose keys fold the address, the addresses too): only a live connection has them (a
        # finished one has let go of its endpoints, see Connection.release), and it is the one
        # fast_index or table would give.
        self.recent: list[Connection] = [_NO_CONNECTION] * RECENT_SLOTS
        # 4-tuple -> the TIME_WAIT its finalised connection left, while it lasts (`_time_wait_keys`)
        self.recent_time_wait: dict[object, TimeWait] = {}
        # the same entries in the order they were recorded, with their keys: expired ones are
        # dropped from the front (an entry that outlives the ones behind it only delays their purge)
        self._time_wait_order: deque[tuple[TimeWait, object, object]] = deque()
        # keep each endpoint's RFC state changes for the records (`sockets` needs them; off, they cost
        # a list and a tuple per change)
        self.record_state_changes = False
        # responder address key (shifted, and 1 for midstream) -> the stand-in Endpoint its new connections
        # share while it has not sent (`segment`)
        self.stand_ins: dict[int, Endpoint] = {}
        # IPv4 address (as an integer) -> the bytes object the connections from or to it share
        self.addresses: dict[int, bytes] = {}
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
        """`segment` for a decoded segment, its IPv4 or IPv6 addresses given as bytes; `tunnel` is its
        tunnel path (`Decoder.tunnel`), part of the connection's identity."""
        return self.segment(
            ts,
            address_key(src, sport),
            address_key(dst, dport),
            src + dst,
            0,
            len(src),
            seq,
            ack,
            flags,
            window,
            length,
            checksum_ok,
            tunnel,
        )

    def segment(
        self,
        ts: float,
        sender: i64,
        receiver: i64,
        buf: bytes,
        at: i64,
        size: i64,
        seq: i64,
        ack: i64,
        flags: i64,
        window: i64,
        length: i64,
        checksum_ok: bool = True,
        tunnel: str = "",
    ) -> Connection:
        """One TCP segment, every one: the clock and the timers due, the connection it belongs to (a new
        one, or a new one in place of a finished incarnation: port reuse), then the connection's steps.

        `sender` and `receiver` are the `address_key`s of each side's address and port; the addresses
        themselves lie side by side in `buf` from `at` on, `size` bytes each (4: IPv4, 16: IPv6), as
        they do in an IP header (the loop passes the frame's buffer: no object is made for them).
        `tunnel` is the segment's tunnel path, "" for none: a tunnelled connection is found in `table`
        by its 4-tuple and tunnel, never by `_find` (it is in neither `recent` nor `fast_index`).
        """
        if ts > self.now:
            self.now = ts
        if self.timers.next_due < ts:
            self._run_timers(ts)
        if tunnel:
            conn = self.table.get(
                (
                    buf[at : at + size],
                    sender & 0xFFFF,
                    buf[at + size : at + 2 * size],
                    receiver & 0xFFFF,
                    tunnel_key(tunnel),
                )
            )
        else:
            conn = self._find(sender, receiver, buf, at, size)
        if conn is not None and flags & SYN and self._is_reuse(conn, flags, seq):
            self._finish(conn, "reused", ts)
            conn = None
        if conn is None:
            conn = self._new_connection(ts, sender, receiver, buf, at, size, flags, tunnel)
        # A connection's responder is a shared stand-in (`_new_connection`) as long as it has not sent and
        # the originator's segments write nothing into it (a kernel's request socket: a flood's unanswered
        # SYN, or lone ACK, costs one Endpoint, not two); before a segment that may, it gets its own.
        orig = conn.orig
        if orig.addr_key == sender and (size == 4 or _same_address(buf, at, orig.ip)):
            endpoint, peer = orig, conn.resp
            if peer.stand_in and needs_own_responder(flags):
                peer = conn.own_responder()
        else:
            endpoint, peer = conn.resp, orig
            if endpoint.stand_in:
                endpoint = conn.own_responder()
        if checksum_ok:
            conn.segment(ts, endpoint, peer, seq, ack, flags, window, length)
        else:
            conn.bad_checksum(endpoint)
        if conn.pending_timers:
            self._schedule_pending(conn)
        return conn

    def _find(self, sender: i64, receiver: i64, buf: bytes, at: i64, size: i64) -> Connection | None:
        """The live connection between the two sides (either way round), if any: the one `recent` last
        gave for this slot, else the fast index's, else (a fast key shared) the table's."""
        slot = recent_slot(sender, receiver)
        conn = self.recent[slot]
        if not _joins(conn, sender, receiver, buf, at, size):
            found = self.fast_index.get(fast_key(sender, receiver))
            if found is None or not _joins(found, sender, receiver, buf, at, size):
                if not self.table:
                    return None
                found = self.table.get(
                    (buf[at : at + size], sender & 0xFFFF, buf[at + size : at + 2 * size], receiver & 0xFFFF)
                )
                if found is None:
                    return None
            conn = self.recent[slot] = found
        return conn

    def flush(self) -> None:
        """End of input: finalise every live connection (in creation order); no SYN can arrive in a
        TIME_WAIT any more, so their entries go too (freed now, not walked by the cyclic collector)."""
        for conn in self.creation_order:
            self._finish(conn, "capture_end", self.now)
        self.creation_order.clear()
        self.stand_ins.clear()
        self.addresses.clear()
        self.timers.clear()
        self.recent = [_NO_CONNECTION] * RECENT_SLOTS
        self.recent_time_wait.clear()
        self._time_wait_order.clear()

    # ------------------------------------------------------------------ connections
    def _new_connection(
        self, ts: float, sender: i64, receiver: i64, buf: bytes, at: i64, size: i64, flags: i64, tunnel: str
    ) -> Connection:
        config = self.config
        if self.live_count >= config.max_connections:
            order = self.creation_order
            oldest = order.popleft()
            while oldest.finished:
                oldest = order.popleft()
            self.evicted += 1
            self._finish(oldest, "evicted", ts)
        if size == 4:
            src, dst = self.ipv4_address(sender, buf, at), self.ipv4_address(receiver, buf, at + 4)
        else:
            src, dst = buf[at : at + size], buf[at + size : at + 2 * size]
        sport, dport = sender & 0xFFFF, receiver & 0xFFFF
        flipped = z.should_flip(sport, dport, flags)
        midstream = not (flags & SYN and not flags & ACK)
        if flipped:
            conn = Connection(ts, dst, dport, src, sport, True, midstream)
            conn.resp.addr_key, conn.orig.addr_key = sender, receiver
        elif size != 4 or self.record_state_changes:
            conn = Connection(ts, src, sport, dst, dport, False, midstream)
            conn.orig.addr_key, conn.resp.addr_key = sender, receiver
        else:  # (IPv4: its address key is the address) the responder a stand-in until it sends
            responder = self._stand_in(receiver, dst, dport, midstream)
            conn = Connection(ts, src, sport, dst, dport, False, midstream, responder)
            conn.orig.addr_key = sender
        if self.record_state_changes:
            conn.orig.state_changes = []
            conn.resp.state_changes = []
        key: tuple = (src, sport, dst, dport)
        if tunnel:  # a tunnelled connection lives in `table` alone, keyed with its tunnel (see `segment`)
            conn.noted().tunnel = tunnel
            route = tunnel_key(tunnel)
            key = (src, sport, dst, dport, route)
            self.table[key] = conn
            self.table[(dst, dport, src, sport, route)] = conn
        elif (index_key := fast_key(sender, receiver)) in self.fast_index:
            self.table[key] = conn
            self.table[(dst, dport, src, sport)] = conn
        else:
            self.fast_index[index_key] = conn
        self.creation_order.append(conn)
        self.live_count += 1
        self.connections_seen += 1
        if self.live_count > self.peak_live:
            self.peak_live = self.live_count
        if self.recent_time_wait:
            time_wait = self.recent_time_wait.get(_connection_time_wait_keys(key)[0])
            if time_wait is not None and ts < time_wait.until and flags & SYN:
                conn.noted().prev_time_wait = time_wait
        self.timers.push_new(conn, 0, config.syn_timeout, "expire")
        self.timers.push_new(conn, 1, config.inactivity_timeout, "inactivity")
        return conn

    def ipv4_address(self, addr_key: i64, buf: bytes, at: i64) -> bytes:
        """The IPv4 address at buf[at:] (`addr_key` its address key), as the bytes object recent connections
        with that address hold: a server's many connections (or a flood's) share one."""
        addresses = self.addresses
        address = addr_key >> 16
        ip = addresses.get(address)
        if ip is None:
            if len(addresses) >= ADDRESS_SLOTS:
                addresses.clear()
            ip = addresses[address] = buf[at : at + 4]
        return ip

    def _stand_in(self, addr_key: i64, ip: bytes, port: int, midstream: bool) -> Endpoint:
        """The stand-in responder the new connections to this IPv4 address and port share until it sends:
        one for connections opened by a SYN (CLOSED), one for those picked up midstream (UNKNOWN)."""
        stand_ins = self.stand_ins
        key = addr_key << 1 | (1 if midstream else 0)
        shared = stand_ins.get(key)
        if shared is None:
            if len(stand_ins) >= STAND_IN_SLOTS:
                stand_ins.clear()
            shared = stand_ins[key] = Endpoint(ip, port, False)
            shared.addr_key = addr_key
            shared.stand_in = True
            if midstream:
                shared.state = rfc.UNKNOWN
        return shared

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
        self.live_count -= 1
        index_key = fast_key(conn.orig.addr_key, conn.resp.addr_key)
        if self.fast_index.get(index_key) is conn:
            del self.fast_index[index_key]
        else:
            key = _connection_key(conn)
            _forget(self.table, key, conn)
            _forget(self.table, (key[2], key[3], key[0], key[1], *key[4:]), conn)
        # (finished connections, each still held by its timers and its place in `creation_order`, are
        # dropped once there are a quarter as many as live ones: under a flood they would otherwise
        # outnumber the live connections, each a Connection and its timers)
        self._dead_timer_owners += 1
        if self._dead_timer_owners > self.live_count // 4 + 4096:
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
                either_way, other_way = _connection_time_wait_keys(_connection_key(conn))
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
            if base == conn.start and not conn.timer_generation:  # (a SYN opening it: set with its others)
                self.timers.push_new(conn, 2, config.attempt_timeout, "attempt")
            else:
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
