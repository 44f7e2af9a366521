"""Anomaly detectors: read finished connections (FlowRecord + its ConnectionFacts), emit findings.

    detectors = DetectorSet(thresholds)        # thresholds: Thresholds (detectors/thresholds.py)
    auditor.add_flow_sink(detectors.on_flow)   # once per finished connection, BEFORE the flow row is
                                               # written: it returns the kinds that tag the connection
                                               # and lists them in record.facts.anomalies
    findings = detectors.finish()              # list[Finding], after the last flow
    ANOMALY_COLUMNS                            # stable column order of the anomalies report
    finding_row(finding) -> dict               # one report row (times ISO 8601 UTC)
    SEVERITIES = ("info", "warning", "critical")

Each finding kind is one module in `detectors/kinds/` (its rule, thresholds with their defaults and
reasons, severity ladder and detail text); `detectors/base.py` holds what they share. A DetectorSet
holds one detector object per kind and shows each finished connection to those that watch one of the
fact families it has (each detector declares them, `Detector.watches` in base.py; the set indexes the
detectors by the families once per combination that turns up); the
detectors return whether they tag it, and the set writes the tags into the record (the flows report
reads them there). `DetectorSet.merge` adds another set's state (the same thresholds, other
connections of the same capture): see base.py for what merges exactly.

`DetectorSet.attach(auditor, thresholds)` creates a set and registers it as the auditor's first flow
sink. A connection still open at the end of the capture is finalised at the capture's last packet,
which may be long after the connection's own last packet: the record's `finalised_at` says when, and
the CLOSE_WAIT, keepalive and missing-third-ACK waits are measured up to it.
"""

from __future__ import annotations

import math
from typing import Any

from ..connection import FlowRecord
from .base import (
    ANOMALY_COLUMNS,
    SEVERITIES,
    Context,
    Detector,
    Finding,
    Services,
    facts_seen,
    finding_order,
    finding_row,
    observed_until,
)
from .kinds import KINDS, MODULES
from .thresholds import LINUX_EPHEMERAL_PORTS, Thresholds

__all__ = [
    "ANOMALY_COLUMNS",
    "KINDS",
    "SEVERITIES",
    "DetectorSet",
    "Finding",
    "Thresholds",
    "finding_row",
    "LINUX_EPHEMERAL_PORTS",
]

_PRUNE_EVERY = 4096  # flows between two prunes of the detectors' time-bound state


class DetectorSet:
    """All detectors; a flow sink (`on_flow`) that returns its findings at `finish()`."""

    def __init__(self, thresholds: Any = None, time_wait_s: float = 60.0) -> None:
        self.thresholds = thresholds if thresholds is not None else Thresholds()
        self.services = Services(self.thresholds.max_tracked_servers)
        self.context = Context(time_wait_s, self.services)
        self.detectors: list[Detector] = [m.DETECTOR(self.thresholds, self.context) for m in MODULES]
        # the detectors a connection is shown to, by the fact families it has (`facts_seen`), from each
        # detector's `watches`: filled as the combinations turn up (at most one per set of families)
        self.watching: dict[int, list[Detector]] = {}
        self.quiet_gap = min([d.quiet_gap for d in self.detectors], default=math.inf)
        self.flows = 0
        self.latest = -math.inf  # latest packet time seen in any flow
        self._next_prune = _PRUNE_EVERY

    @classmethod
    def attach(cls, auditor: Any, thresholds: Any = None) -> DetectorSet:
        """Create a set and register it as the auditor's first flow sink (it tags records before rows are
        written); TIME_WAIT lasts the auditor engine's 2*MSL."""
        detectors = cls(thresholds, auditor.config.time_wait)
        auditor.flow_sinks.insert(0, detectors.on_flow)
        return detectors

    @property
    def dropped_keys(self) -> int:
        """Flows of servers past `max_tracked_servers` (tagged, not aggregated)."""
        return self.services.dropped

    def on_flow(self, r: FlowRecord) -> tuple[str, ...]:
        """See one finished connection; return the kinds that tag it (also appended to its anomalies)."""
        self.flows += 1
        if r.end > self.latest:
            self.latest = r.end
        sid = self.services.admit((r.server_ip, r.server_port))
        seen = facts_seen(r, self.quiet_gap)
        obs_end = observed_until(r)
        watching = self.watching.get(seen)
        if watching is None:
            watching = self.watching[seen] = self.watchers(seen)
        tags: list[str] | None = None
        for d in watching:
            if d.observe(r, obs_end, sid):
                if tags is None:
                    tags = []
                tags.append(d.kind)
        if tags is not None:
            r.facts.anomalies.extend(tags)
        if self.flows >= self._next_prune:
            self._next_prune = self.flows + _PRUNE_EVERY
            for d in self.detectors:
                d.prune(self.latest)
        return () if tags is None else tuple(tags)

    def watchers(self, seen: int) -> list[Detector]:
        """The detectors that watch one of the fact families `seen` (in report order)."""
        return [d for d in self.detectors if d.watches & seen]

    def merge(self, other: DetectorSet) -> None:
        """Add what `other` saw (the same thresholds; other connections of the same capture)."""
        ids = self.services.merge(other.services)
        for mine, theirs in zip(self.detectors, other.detectors, strict=True):
            mine.merge(theirs, ids)
        self.flows += other.flows
        self.latest = max(self.latest, other.latest)

    def finish(self) -> list[Finding]:
        findings: list[Finding] = []
        for d in self.detectors:
            findings.extend(d.findings())
        # a row another kind's finding holds (a port scan's refusals) is left out
        findings = [f for f in findings if not any(d.folds(f) for d in self.detectors)]
        findings.sort(key=finding_order)
        return findings
