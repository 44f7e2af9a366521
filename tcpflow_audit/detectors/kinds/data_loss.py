"""`data_loss`: a connection re-sent a noticeable share of its payload, or stalled on its retransmission timer.

**TCP:** a segment lost on the path is sent again. Fast retransmit / SACK recovery (RFC 5681 3.2,
RFC 6675) re-sends it within about a round trip, after the receiver's duplicate ACKs; when too few
segments follow to produce them (the tail of a burst, a small window) the retransmission timer has to
fire (RFC 6298): the sender waits at least its RTO (Linux: 200 ms plus the round trip) doing nothing,
and doubles the wait at each further loss of the same segment. Loss costs throughput (halved
congestion window per loss event) and, on a timeout, seconds the user sees.

**Rule:** per direction (the sender of the lost data), payload bytes re-sent (the engine counts a
segment re-sending sequence space already sent; segments that fill a gap within a round trip are out of
order, not re-sent) against the payload sent, and each retransmission's kind: after a silence of its
sender of at least 190 ms (Linux's 200 ms RTO floor, less jitter) and a round trip, its retransmission
timer sent it (the silence is a stall); sooner, fast retransmit or SACK recovery (or the rest of a
window re-sent after a timeout). A direction matches with at least `data_loss_share` of its payload
re-sent in at least `data_loss_min_segments` segments, or with a stall of at least `data_loss_stall_s`.
A direction whose peer went silent while the timer backed off is a dead peer (`half_open_peer`), not
loss. The row is per server ip:port, the detail names the direction, the recovery (prompt / by the
timer), the worst stall and the receiver's duplicate ACKs.

**Severity:** info; warning with `data_loss_warning_share` re-sent or a stall of `data_loss_stall_s`
(the user waited); critical with `data_loss_critical_share` re-sent. A share rates above info only
with at least `data_loss_warning_bytes` re-sent: a large share of a short transfer is little loss.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import (
    RESENT,
    SEVERITIES,
    SEVERITY_RANK,
    Aggregate,
    Context,
    Hit,
    RuleDetector,
    Setting,
    backed_off_unanswered,
    plural,
    seconds_text,
)

KIND: Final = "data_loss"
ORDER: Final = 95
SETTINGS: Final = (
    Setting(
        "data_loss_share",
        0.01,
        "background loss on a healthy path is a fraction of a percent; at 1% TCP's throughput (Mathis et al.: "
        "1.22 MSS / (RTT sqrt(p))) is at most ~7 Mbit/s per connection over a 20 ms path",
    ),
    Setting(
        "data_loss_min_segments",
        3,
        "one or two re-sent segments on a short connection are a large share of little: three is the "
        "duplicate-ACK count of fast retransmit itself",
    ),
    Setting(
        "data_loss_warning_bytes",
        14600,
        "less re-sent than one initial window (RFC 6928: 10 segments of 1460 bytes) cost the connection at "
        "most a few round trips of recovery, whatever its share of a short transfer (4 re-sent requests of "
        "111 bytes are 100% of little); the timer's stalls are rated by data_loss_stall_s",
    ),
    Setting(
        "data_loss_warning_share",
        0.03,
        "3% re-sent: at most ~4 Mbit/s per connection over 20 ms (Mathis), and losses at a burst's tail, which "
        "only the retransmission timer repairs, become likely",
    ),
    Setting(
        "data_loss_critical_share",
        0.10,
        "one segment in ten re-sent: the path is broken (a failing link, a policer), not congested",
    ),
    Setting(
        "data_loss_stall_s",
        1.0,
        "a sender waiting a second on its retransmission timer is a pause users see (the RFC 6298 initial RTO is 1 s)",
    ),
)


class DataLoss(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, RESENT, context)
        self.share: float = t.data_loss_share
        self.min_segments: int = t.data_loss_min_segments
        self.warning_bytes: int = t.data_loss_warning_bytes
        self.warning_share: float = t.data_loss_warning_share
        self.critical_share: float = t.data_loss_critical_share
        self.stall_s: float = t.data_loss_stall_s
        self.dead_peer_resends: int = t.dead_peer_backoff_resends
        self.worst: dict[int, list[float]] = {}  # by service id: [severity rank, longest stall]
        self._rank = 0  # the severity rank of the latest hit (rule -> aggregate)

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        best: Hit | None = None
        rank = -1
        for side in ("client", "server"):
            found = self._direction(r, side)
            if found is not None and (found[1] > rank or (found[1] == rank and best and found[0].value > best.value)):
                best, rank = found
        self._rank = rank
        return best

    def _direction(self, r: FlowRecord, side: str) -> tuple[Hit, int] | None:
        f = r.facts
        rs = f.resends
        if rs is None:
            return None
        mine = rs.side(side)
        resent, fast, timeout, stall, stall_at = (
            mine.resent_bytes,
            mine.fast_resends,
            mine.timeout_resends,
            mine.stall_s,
            mine.stall_at,
        )
        sent, dup_acks = (
            (r.client_bytes, f.server_dup_acks) if side == "client" else (r.server_bytes, f.client_dup_acks)
        )
        if not resent or backed_off_unanswered(r, side, self.dead_peer_resends):
            return None
        share = resent / max(sent, resent)
        segments = fast + timeout
        if not ((share >= self.share and segments >= self.min_segments) or stall >= self.stall_s):
            return None
        rated = segments >= self.min_segments and resent >= self.warning_bytes  # (enough to rate by share)
        if share >= self.critical_share and rated:
            rank = SEVERITY_RANK["critical"]
        elif (share >= self.warning_share and rated) or stall >= self.stall_s:
            rank = SEVERITY_RANK["warning"]
        else:
            rank = SEVERITY_RANK["info"]
        recovery = (
            "%d sent promptly (fast retransmit or SACK recovery after the receiver's %s, or the rest of a "
            "window after a timeout), %d by the retransmission timer"
            % (fast, plural(dup_acks, "duplicate ACK"), timeout)
        )
        worst = "; longest stall %s waiting on the retransmission timer" % seconds_text(stall) if timeout else ""
        peer = "server" if side == "client" else "client"
        hit = Hit(
            KIND,
            r.start,
            stall_at if stall_at is not None and stall_at > r.start else r.end,
            "%s -> %s lost data: %s re-sent %.1f%% of its payload (%d of %d bytes) in %s: %s%s"
            % (side, peer, side, 100.0 * share, resent, sent, plural(segments, "retransmission"), recovery, worst),
            side,
            segments,
            share,
            rank == SEVERITY_RANK["critical"],
        )
        return hit, rank

    def aggregate(self, hit: Hit, r: FlowRecord, sid: int) -> None:
        super().aggregate(hit, r, sid)
        rs = r.facts.resends
        assert rs is not None  # (a hit: there are retransmissions)
        stall = rs.side(hit.side).stall_s
        worst = self.worst.get(sid)
        if worst is None:
            self.worst[sid] = [float(self._rank), stall]
        else:
            worst[0] = max(worst[0], float(self._rank))
            worst[1] = max(worst[1], stall)

    def merge(self, other: Any, ids: list[int]) -> None:
        super().merge(other, ids)
        for theirs, (rank, stall) in other.worst.items():
            sid = ids[theirs]
            if sid < 0:
                continue
            worst = self.worst.get(sid)
            if worst is None:
                self.worst[sid] = [rank, stall]
            else:
                worst[0] = max(worst[0], rank)
                worst[1] = max(worst[1], stall)

    def severity(self, agg: Aggregate, sid: int) -> str:
        return SEVERITIES[int(self.worst[sid][0])]

    def summary(self, agg: Aggregate, sid: int) -> str:
        stall = self.worst[sid][1]
        return (
            "%d connections %s lost data: up to %.1f%% of a direction's payload re-sent, %d retransmissions in all%s "
            "(lossy direction: %s)"
            % (
                agg.count,
                agg.clients_text(),
                100.0 * agg.value_max,
                agg.packets,
                "; longest stall %s on the retransmission timer" % seconds_text(stall) if stall > 0 else "",
                agg.sides_text(),
            )
        )


DETECTOR: Final = DataLoss
