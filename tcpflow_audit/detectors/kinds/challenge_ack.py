"""`challenge_ack`: a SYN answered by a plain ACK for another sequence number (RFC 5961 challenge ACK).

**TCP:** a host that still holds a connection on the 4-tuple (ESTABLISHED, or any synchronized
state) and receives a SYN does not reset its connection: RFC 5961 4.2 (and 3.2 for RSTs) makes it
answer with an ACK for its own connection's sequence numbers, a "challenge ACK". A client whose old
connection is really gone answers that with a RST carrying the acknowledged number (RFC 9293 3.10.7.3:
an unacceptable ACK in SYN-SENT), which resets the stale connection, and retries its SYN; until then,
and for good when that RST is lost or filtered, the new connection waits. The usual cause: the client
lost its connection (reboot, crash, a socket closed with its RST or FIN dropped by a firewall or NAT)
and reuses the same source port, while the server still holds the old one.

**Rule:** the server's first answer to the client's SYN is an ACK without SYN whose acknowledgement
number is not the SYN's sequence number + 1. The detail says how long the new connection was held up:
until the handshake completed on this connection; or, when the client reset it, until its retried SYN
(the same initial sequence number, a new row of the flows report on the same 4-tuple, which Zeek also
starts anew) completed a handshake; or until the attempt's last packet when neither happened. Attempts
waiting for their retry are held (at most `max_tracked_sources`; the oldest is reported as it stands).

**Severity:** warning (each new connection on the 4-tuple is delayed, at least by the client's SYN
retransmission timer when its RST does not get through).
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import EVERY_FLOW, Aggregate, Context, Finding, Hit, RuleDetector, seconds_text

KIND: Final = "challenge_ack"
ORDER: Final = 15
SETTINGS: Final = ()


class ChallengeAck(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        # (every connection: the retry that opens the held-up connection has no fact of note)
        super().__init__(KIND, EVERY_FLOW, context)
        self.max_pending: int = t.max_tracked_sources
        # attempts the client reset, by 4-tuple, waiting for the retried SYN: (record, service id)
        self.pending: dict[tuple[bytes, int, bytes, int], tuple[FlowRecord, int]] = {}

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        if not f.challenge_acks:
            if self.pending and f.handshake_done_ts is not None:
                self._retried(r)
            return False
        if f.handshake_done_ts is None and f.client_rst_ts is not None and sid >= 0:
            pending = self.pending
            if len(pending) >= self.max_pending:
                oldest = next(iter(pending))
                self._settle(*pending.pop(oldest), None)
            pending[(r.client_ip, r.client_port, r.server_ip, r.server_port)] = (r, sid)
            return True
        return super().observe(r, obs_end, sid)

    def _retried(self, r: FlowRecord) -> None:
        """A completed connection: the retry of an attempt held up by a challenge ACK, if it is one."""
        key = (r.client_ip, r.client_port, r.server_ip, r.server_port)
        held = self.pending.get(key)
        if held is not None and held[0].facts.client_isn == r.facts.client_isn:
            del self.pending[key]
            self._settle(held[0], held[1], r.facts.handshake_done_ts)

    def _settle(self, r: FlowRecord, sid: int, opened: float | None) -> None:
        hit = self.rule(r, 0.0, opened)
        if hit is not None:
            self.aggregate(hit, r, sid)

    def merge(self, other: Any, ids: list[int]) -> None:
        super().merge(other, ids)
        for record, theirs in other.pending.values():
            if ids[theirs] >= 0:
                self._settle(record, ids[theirs], None)

    def findings(self) -> list[Finding]:
        for record, sid in list(self.pending.values()):
            self._settle(record, sid, None)
        self.pending.clear()
        return super().findings()

    def rule(self, r: FlowRecord, obs_end: float, opened: float | None = None) -> Hit | None:
        f = r.facts
        if not f.challenge_acks or f.challenge_ack_ts is None:
            return None
        first = f.syn_ts if f.syn_ts is not None else f.challenge_ack_ts
        if f.handshake_done_ts is not None:
            held, outcome = f.handshake_done_ts - first, "until the handshake completed"
        elif opened is not None:
            held, outcome = (
                opened - first,
                "until the client, having reset it, opened it with its retried SYN (a new row on the 4-tuple)",
            )
        elif f.client_rst_ts is not None:
            held, outcome = (
                f.client_rst_ts - first,
                "until the client reset it (RFC 9293: an unacceptable ACK in SYN-SENT), then retries its SYN: a "
                "new connection on the 4-tuple",
            )
        else:
            held, outcome = observed_wait(r, first), "and it never opened in the capture"
        return Hit(
            KIND,
            first,
            first + held,
            "the server answered the client's SYN with %s for another sequence number (RFC 5961 challenge "
            "ACK: it still holds an earlier connection on this 4-tuple); the new connection was held up %s %s"
            % (
                "a plain ACK" if f.challenge_acks == 1 else "%d plain ACKs" % f.challenge_acks,
                seconds_text(held),
                outcome,
            ),
            "server",
            f.challenge_acks,
            held,
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connection attempts %s met a challenge ACK (the server still held an earlier connection on "
            "their 4-tuple), held up for up to %s" % (agg.count, agg.clients_text(), seconds_text(agg.value_max))
        )


def observed_wait(r: FlowRecord, first: float) -> float:
    """From the first SYN to the last packet of the attempt."""
    return max(0.0, r.end - first)


DETECTOR: Final = ChallengeAck
