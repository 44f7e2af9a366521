"""`syn_during_time_wait`: a new SYN on a 4-tuple whose previous connection was still in TIME_WAIT.

Rule: the engine saw a SYN on a 4-tuple whose previous connection's TIME_WAIT had not expired. The
detail names the holder of that TIME_WAIT by its role in the previous connection and its ip:port,
and how long it still had to run. Severity: info; warning from `syn_in_time_wait_warn_count`
connections on one service.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import SYN_IN_TIME_WAIT, Aggregate, Context, Hit, RuleDetector, Setting, ip_port

KIND: Final = "syn_during_time_wait"
ORDER: Final = 60
SETTINGS: Final = (
    Setting(
        "syn_in_time_wait_warn_count",
        10,
        "Linux accepts a SYN in TIME_WAIT (higher ISN / timestamp); occasional reuse is normal, 10 on one "
        "service means clients recycle ports faster than 2*MSL (60 s)",
    ),
)


class SynDuringTimeWait(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, SYN_IN_TIME_WAIT, context)
        self.warn_count: int = t.syn_in_time_wait_warn_count

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        if not r.facts.syn_in_time_wait:
            return None
        return self._hit(r, True)

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        # RuleDetector's observe, with the detail text built only for the connection that becomes its
        # row's example (the only one written): where clients reuse ports, every other SYN is a hit
        if not r.facts.syn_in_time_wait:
            return False
        if sid >= 0:
            agg = self.aggs.get(sid)
            wanted = agg is None or agg.takes_example(_syn_time(r), r.client_ip, r.client_port)
            self.aggregate(self._hit(r, wanted), r, sid)
        return True

    def _hit(self, r: FlowRecord, with_detail: bool) -> Hit:
        """The hit of a connection whose SYN met a TIME_WAIT (its detail "" unless `with_detail`)."""
        f = r.facts
        ts = _syn_time(r)
        if f.time_wait_until is None:  # (a record made without the holder)
            detail = (
                "new SYN on a 4-tuple whose previous connection was still in TIME_WAIT (less than 2*MSL "
                "after its close); %s" % _outcome(r)
            )
            return Hit(KIND, ts, ts, detail, "client", 1 + f.syn_retransmits, 1.0)
        detail = ""
        if with_detail:
            holder = ip_port(f.time_wait_holder_ip, f.time_wait_holder_port)
            if f.time_wait_holder == "both":
                who = "both ends of the previous connection were in TIME_WAIT (its FINs crossed); %s held it" % holder
            else:
                who = "the %s %s still held TIME_WAIT" % (f.time_wait_holder, holder)
            detail = (
                "new SYN on a 4-tuple whose previous connection was still in TIME_WAIT: %s until %.1f s after "
                "this SYN (2*MSL after its close); %s" % (who, f.time_wait_until - ts, _outcome(r))
            )
        # side: the TIME_WAIT holder (its role in the previous connection), for the aggregated detail
        return Hit(KIND, ts, ts, detail, f.time_wait_holder, 1 + f.syn_retransmits, 1.0)

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning" if agg.count >= self.warn_count else "info"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d new SYNs %s arrived on 4-tuples still in TIME_WAIT over %.1f s: clients reuse ports faster "
            "than 2*MSL (TIME_WAIT held by, in the previous connections: %s)"
            % (agg.count, agg.clients_text(), agg.last - agg.first, agg.sides_text())
        )


def _syn_time(r: FlowRecord) -> float:
    syn_ts = r.facts.syn_ts
    return syn_ts if syn_ts is not None else r.start


def _outcome(r: FlowRecord) -> str:
    if r.facts.handshake_done_ts is not None:
        return "the TIME_WAIT side accepted it and the handshake completed"
    return "the handshake did not complete"


DETECTOR: Final = SynDuringTimeWait
