"""`syn_flood`: half-open connection attempts to one server ip:port at a flood's rate.

Rule: per server ip:port, half-open attempts (a SYN, no completed handshake, no client data, not
refused by a RST) are counted by their SYN time in a sliding window of `syn_flood_window_s`; when the
count reaches `syn_flood_rate`, a flood is reported (peak rate and when, distinct sources, SYN :
SYN-ACK : ACK over all connections to that service, duration). The attempts counted while the rate
was at the threshold are tagged. Severity: critical.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ...decode import format_ip
from ...report import iso_utc
from ..base import EVERY_FLOW, CappedSet, Context, Detector, Finding, RateWindow, Setting, grow

KIND: Final = "syn_flood"
ORDER: Final = 130
SETTINGS: Final = (
    Setting(
        "syn_flood_window_s",
        1.0,
        "rates are per second over this window (Juniper SRX syn-flood screen and Snort/Suricata "
        "detection_filter rules count per 1 s)",
    ),
    Setting(
        "syn_flood_rate",
        200,
        'Juniper SRX screen "syn-flood attack-threshold" default: 200 SYNs/s to one destination without a '
        "completed handshake",
    ),
    Setting("max_tracked_sources", 65536, "memory bound on the distinct-source set per server"),
)


class _Service:
    __slots__ = ("syns", "synacks", "acks", "half_open", "sources", "window")

    def __init__(self, window_s: float, rate: int) -> None:
        self.syns = self.synacks = self.acks = self.half_open = 0
        self.sources = CappedSet()
        self.window = RateWindow(window_s, rate)


class SynFlood(Detector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, EVERY_FLOW, context)
        self.window_s: float = t.syn_flood_window_s
        self.rate: int = t.syn_flood_rate
        self.max_sources: int = t.max_tracked_sources
        self.states: list[_Service | None] = []  # by service id

    def _state(self, sid: int) -> _Service:
        states = self.states
        if sid >= len(states):
            grow(states, sid)
        s = states[sid]
        if s is None:
            s = states[sid] = _Service(self.window_s, self.rate)
        return s

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        if f.syn_ts is None or sid < 0:
            return False
        s = self._state(sid)
        s.syns += 1 + f.syn_retransmits
        if f.synack_ts is not None:
            s.synacks += 1 + f.synack_retransmits
        if f.handshake_done_ts is not None:
            s.acks += 1
            return False
        if (f.synack_ts is None and f.server_rst_ts is not None) or f.client_payload_packets:
            return False  # refused, or the client sent data: not half-open
        s.half_open += 1
        s.sources.add(r.client_ip, self.max_sources)
        return s.window.add(f.syn_ts) >= self.rate

    def prune(self, latest: float) -> None:
        for s in self.states:
            if s is not None:
                s.window.prune(latest)

    def merge(self, other: Any, ids: list[int]) -> None:
        for theirs, o in enumerate(other.states):
            if o is None or ids[theirs] < 0:
                continue
            s = self._state(ids[theirs])
            s.syns += o.syns
            s.synacks += o.synacks
            s.acks += o.acks
            s.half_open += o.half_open
            s.sources.merge(o.sources, self.max_sources)
            s.window.merge(o.window)

    def findings(self) -> list[Finding]:
        out = []
        for sid, s in enumerate(self.states):
            if s is None:
                continue
            window = s.window
            window.result()
            if window.peak < self.rate:
                continue
            ip, port = self.services.keys[sid]
            duration = max(0.0, window.hot_last - window.hot_first)
            detail = (
                "peak %d half-open connections in %.3g s at %s; %d half-open attempts in all from %s sources "
                "over %.1f s of flood; SYN : SYN-ACK : ACK = %d : %d : %d (%d handshakes completed)"
                % (
                    window.peak,
                    self.window_s,
                    iso_utc(window.peak_ts),
                    s.half_open,
                    s.sources.text(),
                    duration,
                    s.syns,
                    s.synacks,
                    s.acks,
                    s.acks,
                )
            )
            out.append(
                Finding(
                    KIND,
                    "critical",
                    window.hot_first,
                    window.hot_last,
                    "",
                    None,
                    format_ip(ip),
                    port,
                    s.half_open,
                    detail,
                )
            )
        return out


DETECTOR: Final = SynFlood
