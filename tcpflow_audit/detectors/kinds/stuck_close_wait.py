"""`stuck_close_wait`: one side acknowledged the peer's FIN and had not sent its own when it was last seen.

**TCP:** ESTABLISHED -> CLOSE_WAIT when a side receives and acknowledges the peer's FIN; it leaves only
when its application calls close() (its FIN: -> LAST_ACK). TCP has no CLOSE_WAIT timer. The peer sits
in FIN_WAIT_2.

**Rule:** every connection where one side's FIN was acknowledged, the other side (the holder) sent no
FIN and neither sent a RST is tagged and reported, however short the capture: it ended with a socket in
CLOSE_WAIT. How long it was held runs to when the connection was finalised (the capture's last packet
for one still open at the end); the holder's silence is counted from the FIN or its own last packet,
whichever is later (a holder still sending data, as in a half close, is not holding anything up).

**Severity** grows with the evidence, per server ip:port:
* a socket is *overdue* when its holder has been silent for `close_wait_s`, or for
  `close_wait_baseline_factor` times what this service usually takes to answer a peer's FIN with its
  own (the median over its other connections, once there are `close_wait_baseline_min` of them) and at
  least `close_wait_min_s`: a service that closes within milliseconds and has not after seconds is
  stuck;
* critical: `close_wait_critical_count` overdue sockets on the service;
* warning: one overdue socket, or `close_wait_warn_count` sockets held at least `close_wait_min_s`
  (several at once is a pattern, not a slow request);
* info: otherwise (held briefly, nothing to compare with).
The detail says how long, and what the service's other connections took (or that there were none).
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import (
    EVERY_FLOW,
    Aggregate,
    Context,
    Finding,
    Hit,
    LogHistogram,
    RuleDetector,
    Setting,
    grow,
    other_side,
    plural,
    seconds_text,
)

KIND: Final = "stuck_close_wait"
ORDER: Final = 120
SETTINGS: Final = (
    Setting(
        "close_wait_s",
        60.0,
        "Linux tcp_fin_timeout is 60 s: after that the peer's orphaned FIN_WAIT_2 socket is gone, and a socket "
        "still in CLOSE_WAIT is a file descriptor the application forgot to close()",
    ),
    Setting(
        "close_wait_min_s",
        1.0,
        "an application closes within milliseconds of reading EOF; one that has not after a second is "
        "holding the socket (below this, a capture that stops just after a FIN shows nothing)",
    ),
    Setting(
        "close_wait_baseline_factor",
        100.0,
        "a socket silent 100 times longer than the service usually takes to answer a FIN with its own is "
        "stuck, not slow",
    ),
    Setting(
        "close_wait_baseline_min",
        5,
        "closes of the service's other connections needed before their median is a baseline",
    ),
    Setting(
        "close_wait_warn_count",
        3,
        "sockets of one service held a second or more each, at once: a leak pattern, not one slow request",
    ),
    Setting(
        "close_wait_critical_count",
        10,
        "10 overdue sockets in CLOSE_WAIT on one service is a descriptor leak, not a one-off race",
    ),
)
_SIDES: Final = ("server", "client")


class _Side:
    """One holder side of a service: how it closes normally, and the sockets it held."""

    __slots__ = ("closes", "held", "held_idle", "over_min", "over_abs")

    def __init__(self) -> None:
        self.closes = LogHistogram()  # its FIN after the peer's, on the connections it did close
        self.held = 0  # connections that ended with it in CLOSE_WAIT
        self.held_idle = LogHistogram()  # their holder's silence at the end
        self.over_min = 0  # of them: silent at least close_wait_min_s
        self.over_abs = 0  # of them: silent at least close_wait_s

    def merge(self, o: _Side) -> None:
        self.closes.merge(o.closes)
        self.held += o.held
        self.held_idle.merge(o.held_idle)
        self.over_min += o.over_min
        self.over_abs += o.over_abs


class StuckCloseWait(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, EVERY_FLOW, context)
        self.close_wait_s: float = t.close_wait_s
        self.min_s: float = t.close_wait_min_s
        self.factor: float = t.close_wait_baseline_factor
        self.baseline_min: int = t.close_wait_baseline_min
        self.warn_count: int = t.close_wait_warn_count
        self.critical_count: int = t.close_wait_critical_count
        # by service id, for each holder side
        self.sides: dict[str, list[_Side | None]] = {"server": [], "client": []}

    def _side(self, sid: int, side: str) -> _Side:
        states = self.sides[side]
        if sid >= len(states):
            grow(states, sid)
        s = states[sid]
        if s is None:
            s = states[sid] = _Side()
        return s

    def _known(self, sid: int, side: str) -> _Side | None:
        states = self.sides[side]
        return states[sid] if sid < len(states) else None

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        client_fin, server_fin = f.client_fin_ts, f.server_fin_ts
        if client_fin is not None and server_fin is not None:
            # a close: how long the second closer took to answer the first one's FIN (its CLOSE_WAIT)
            if sid >= 0 and f.client_rst_ts is None and f.server_rst_ts is None:
                if server_fin >= client_fin:
                    self._side(sid, "server").closes.add(server_fin - client_fin)
                else:
                    self._side(sid, "client").closes.add(client_fin - server_fin)
            return False
        return super().observe(r, obs_end, sid)

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.client_rst_ts is not None or f.server_rst_ts is not None:
            return None
        if f.client_fin_ts is not None and f.client_fin_acked and f.server_fin_ts is None:
            holder, peer_fin, holder_data = "server", f.client_fin_ts, f.server_last_data_ts
        elif f.server_fin_ts is not None and f.server_fin_acked and f.client_fin_ts is None:
            holder, peer_fin, holder_data = "client", f.server_fin_ts, f.client_last_data_ts
        else:
            return None
        held = obs_end - peer_fin
        idle = obs_end - peer_fin if holder_data is None else max(0.0, obs_end - max(peer_fin, holder_data))
        when = (
            "at the end of the capture"
            if r.end_reason == "capture_end"
            else "when the connection was finalised (%s)" % r.end_reason
        )
        silent = "" if idle >= held else " (its last data %s before the end)" % seconds_text(idle)
        # value: the holder's silence (what the severity is judged by)
        return Hit(
            KIND,
            peer_fin,
            obs_end,
            "%s still in CLOSE_WAIT %s: held %s%s since the %s's FIN was acknowledged, no FIN from the "
            "%s" % (holder, when, seconds_text(held), silent, other_side(holder), holder),
            holder,
            1,
            idle,
        )

    def aggregate(self, hit: Hit, r: FlowRecord, sid: int) -> None:
        side = self._side(sid, hit.side)
        side.held += 1
        side.held_idle.add(hit.value)
        if hit.value >= self.min_s:
            side.over_min += 1
        if hit.value >= self.close_wait_s:
            side.over_abs += 1
        super().aggregate(hit, r, sid)

    def merge(self, other: Any, ids: list[int]) -> None:
        super().merge(other, ids)
        for holder, states in other.sides.items():
            for theirs, side in enumerate(states):
                if side is not None and ids[theirs] >= 0:
                    self._side(ids[theirs], holder).merge(side)

    # ------------------------------------------------------------------ severity and text
    def _baseline(self, side: _Side) -> float | None:
        return side.closes.median() if side.closes.total >= self.baseline_min else None

    def _overdue(self, side: _Side) -> int:
        baseline = self._baseline(side)
        if baseline is None:
            return side.over_abs
        cut = max(self.min_s, self.factor * baseline)
        if cut >= self.close_wait_s:
            return side.over_abs
        return side.over_abs + max(
            0, side.held_idle.count_at_least(cut) - side.held_idle.count_at_least(self.close_wait_s)
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        overdue = held_long = 0
        for holder in _SIDES:
            side = self._known(sid, holder)
            if side is not None and side.held:
                overdue += self._overdue(side)
                held_long += side.over_min
        if overdue >= self.critical_count:
            return "critical"
        if overdue or held_long >= self.warn_count:
            return "warning"
        return "info"

    def _comparison(self, sid: int, agg: Aggregate) -> str:
        """What the service's other connections took to answer a FIN, for each holder side."""
        parts = []
        for holder in _SIDES:
            if not agg.sides.get(holder):
                continue
            side = self._side(sid, holder)
            n = side.closes.total
            peer = other_side(holder)
            if not n:
                parts.append(
                    "no other connection of this service was closed by the %s after the %s's FIN: "
                    "nothing to compare with" % (holder, peer)
                )
            elif n < self.baseline_min:
                parts.append(
                    "only %s of this service closed by the %s after the %s's FIN (median %s): too few to "
                    "compare with" % (plural(n, "other connection"), holder, peer, seconds_text(side.closes.median()))
                )
            else:
                parts.append(
                    "this service's other connections closed %s after the %s's FIN (median of %d, closed by "
                    "the %s)" % (seconds_text(side.closes.median()), peer, n, holder)
                )
        return "; ".join(parts)

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connections %s still in CLOSE_WAIT when last seen (holder: %s), held up to %s without a FIN: the "
            "application did not close() them"
            % (agg.count, agg.clients_text(), agg.sides_text(), seconds_text(agg.value_max))
        )

    def row(self, agg: Aggregate, sid: int) -> Finding:
        finding = super().row(agg, sid)
        finding.detail += "; " + self._comparison(sid, agg)
        return finding


DETECTOR: Final = StuckCloseWait
