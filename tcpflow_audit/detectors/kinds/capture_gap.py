"""`capture_gap`: the capture itself is missing packets (the network delivered them, the capture did not).

**TCP:** a receiver acknowledges only what it has received, so sequence space acknowledged by the peer
and never seen in the capture was sent, delivered, and not captured: the capture point dropped it (a
loaded host's tcpdump buffer, a SPAN port's oversubscription, an offload that hid it, a capture filter).
This is Zeek's `missed_bytes` (its conn.log column, and its capture_loss summary); tshark marks the
same segments "previous segment not captured" and the ACKs "ACKed unseen segment". Every other finding
on such a capture is built on missing evidence: a missing FIN looks like a half-open connection, a
missing ACK like a retransmission.

**Rule:** the flows report's `missed_bytes` per connection (the gaps below the peer's highest
acknowledgement, and what it acknowledges beyond the last byte seen). Over the whole capture, when the
missed bytes reach `capture_gap_share` of the bytes the connections carried, one row says how much
is missing and names the connections missing the most; a connection is tagged when its own missed
share reaches the same level. The row's client and server are those of the connection missing the most.

**Severity:** warning (findings on those connections are less reliable); critical from
`capture_gap_critical_share`.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ...decode import format_ip
from ..base import EVERY_FLOW, Context, Detector, Finding, Setting, ip_port, plural

KIND: Final = "capture_gap"
ORDER: Final = 5
SETTINGS: Final = (
    Setting(
        "capture_gap_share",
        0.001,
        "a capture missing one byte in a thousand of what its connections carried has dropped packets "
        "(a healthy capture point misses none): its findings may rest on missing packets",
    ),
    Setting(
        "capture_gap_critical_share",
        0.1,
        "Zeek's CaptureLoss::too_much_loss: a tenth of the traffic missing, the capture cannot be trusted",
    ),
)
_TOP: Final = 3  # connections named in the detail


class CaptureGap(Detector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, EVERY_FLOW, context)  # every connection: the share is of all bytes carried
        self.share: float = t.capture_gap_share
        self.critical_share: float = t.capture_gap_critical_share
        self.carried = 0  # bytes of every connection (both directions, Zeek's sizes)
        self.missed = 0
        self.connections = 0  # with missed bytes
        self.first = 0.0
        self.last = 0.0
        # the connections missing the most: (missed, start, client ip, client port, server ip, server port)
        self.top: list[tuple[int, float, bytes, int, bytes, int]] = []

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        carried = r.client_bytes + r.server_bytes
        self.carried += carried
        missed = f.missed_bytes
        if not missed:
            return False
        self._note(missed, r.start, r.end, (r.client_ip, r.client_port, r.server_ip, r.server_port))
        return missed >= self.share * max(carried, missed)

    def _note(self, missed: int, start: float, end: float, key: tuple[bytes, int, bytes, int]) -> None:
        if not self.connections or start < self.first:
            self.first = start
        if end > self.last:
            self.last = end
        self.connections += 1
        self.missed += missed
        self.top.append((missed, start, *key))
        self.top.sort(key=lambda e: (-e[0], e[1], e[2], e[3]))
        del self.top[_TOP:]

    def merge(self, other: Any, ids: list[int]) -> None:
        self.carried += other.carried
        if other.connections:
            if not self.connections or other.first < self.first:
                self.first = other.first
            self.last = max(self.last, other.last)
            self.connections += other.connections
            self.missed += other.missed
            self.top = sorted(self.top + other.top, key=lambda e: (-e[0], e[1], e[2], e[3]))[:_TOP]

    def findings(self) -> list[Finding]:
        share = self.missed / max(self.carried, self.missed, 1)
        if not self.missed or share < self.share:
            return []
        worst = self.top[0]
        named = ", ".join(
            "%s -> %s (%d bytes)" % (ip_port(cip, cport), ip_port(sip, sport), missed)
            for missed, _, cip, cport, sip, sport in self.top
        )
        return [
            Finding(
                KIND,
                "critical" if share >= self.critical_share else "warning",
                self.first,
                self.last,
                format_ip(worst[2]),
                worst[3] if self.connections == 1 else None,
                format_ip(worst[4]),
                worst[5],
                self.connections,
                "the capture is missing %.2f%% of the traffic (%d of %d bytes acknowledged by a receiver but never "
                "captured, in %s): the capture point dropped packets, and findings on those connections are less "
                "reliable; most missing: %s"
                % (100.0 * share, self.missed, self.carried, plural(self.connections, "connection"), named),
            )
        ]


DETECTOR: Final = CaptureGap
