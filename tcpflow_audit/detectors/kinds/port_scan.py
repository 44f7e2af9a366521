"""`port_scan`: one source trying many ports of one host, or one port of many hosts, mostly failing.

**TCP:** a scanner sends a SYN to each port (or host) it probes: a closed port answers with a RST, a
filtered one not at all, an open one with a SYN-ACK that the scanner resets or leaves half-open (a SYN
scan never completes the handshake). Seen per server ip:port each port gets one SYN, which no
per-service kind notices.

**Rule:** a failed attempt is a SYN whose handshake did not complete and that carried no data (refused,
unanswered or left half-open). Per (source, destination host) the distinct destination ports of failed
attempts, and per (source, destination port) the distinct destination hosts, are counted in a sliding
window of `port_scan_window_s`, each port (host) at its first failed attempt: when `port_scan_ports`
ports of one host (a vertical scan) or `port_scan_hosts` hosts on one port (a horizontal scan) are
reached, a row names the source, the target and the attempts' outcomes (refused / unanswered /
half-open). Completed connections never count, so a busy client (many connections to a few services,
mostly completed) does not match. The attempts counted while the window was at the threshold are tagged.
The rows other kinds make of the failed attempts (`FOLDED`: refused, unanswered, left half-open), each of
the scanning client alone, about the scanned host or port, beginning while the scan went on, are the
scan's: the report leaves them out (`folds`), this row counts them.
Memory: at most `max_tracked_sources` (source, target) pairs of each sort, 1024 ports or hosts each. A
pair's first failed attempt is kept as a small tuple, and the set and rate window of a sweep are made at
its second; a source's first attempt is one entry by source for both its pairs: a spoofed flood's
sources each send one SYN, a scanner many, so a flood of random sources costs a tuple per source, not
two sweeps. The periodic prune walks only the sweeps made.

**Severity:** warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ...decode import format_ip
from ..base import CLIENT_SET_CAP, HANDSHAKE_INCOMPLETE, Context, Detector, Finding, RateWindow, Setting

KIND: Final = "port_scan"
ORDER: Final = 135
SETTINGS: Final = (
    Setting("port_scan_window_s", 300.0, "Zeek's scan policy (misc/scan.zeek) counts over 5 minutes"),
    Setting(
        "port_scan_ports",
        15,
        "Zeek's Scan::port_scan_threshold: 15 ports of one host failing from one source is no client's "
        "mistake (a client tries a handful of known ports)",
    ),
    Setting(
        "port_scan_hosts",
        25,
        "Zeek's Scan::addr_scan_threshold: 25 hosts failing on one port from one source",
    ),
)


# the kinds of a failed attempt's row, by its outcome: refused, unanswered, left half-open
FOLDED: Final = ("connection_refused", "syn_timeout", "missing_third_ack")


class _Sweep:
    """One (source, target) pair: the distinct items (ports or hosts) of its failed attempts."""

    __slots__ = ("items", "capped", "window", "first", "last", "refused", "unanswered", "half_open")

    def __init__(self, window_s: float, level: int) -> None:
        self.items: set[Any] = set()
        self.capped = False
        self.window = RateWindow(window_s, level)
        self.first = float("inf")
        self.last = float("-inf")
        self.refused = self.unanswered = self.half_open = 0

    def add(self, item: Any, ts: float, end: float, outcome: int) -> int:
        """Count one failed attempt (its SYN at `ts`, its end: the RST refusing it, else its SYN); the distinct
        items in the window ending at it (as known so far)."""
        self.first = min(self.first, ts)
        self.last = max(self.last, end)
        if outcome == 0:
            self.refused += 1
        elif outcome == 1:
            self.unanswered += 1
        else:
            self.half_open += 1
        if item in self.items:
            return 0
        if len(self.items) >= CLIENT_SET_CAP:
            self.capped = True
            return 0
        self.items.add(item)
        return self.window.add(ts)

    def merge(self, other: _Sweep) -> None:
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        self.refused += other.refused
        self.unanswered += other.unanswered
        self.half_open += other.half_open
        self.capped = self.capped or other.capped
        for item in other.items:
            if item not in self.items and len(self.items) < CLIENT_SET_CAP:
                self.items.add(item)
        self.window.merge(other.window)

    def outcomes(self) -> str:
        return "%d refused by a RST, %d unanswered, %d left half-open" % (self.refused, self.unanswered, self.half_open)

    def distinct(self) -> str:
        return "%s%d" % (">=" if self.capped else "", len(self.items))


# a pair's first failed attempt until its second: (host, port, SYN time, end, outcome), one tuple for both
# of the attempt's pairs; the item a pair counts is the port of a vertical pair, the host of a horizontal one
# (of objects, Any: mypyc boxes a tuple of native floats anew, the record's own float objects are shared)
_Probe = tuple[Any, Any, Any, Any, Any]
_PORT: Final = 1
_HOST: Final = 0


def _sweep(value: Any, window_s: float, level: int, item: int) -> _Sweep:
    """The sweep of a pair's value in `vertical` or `horizontal`: made from its first attempt if that is all
    it holds (adding it to a fresh sweep is what that sweep would have counted)."""
    if isinstance(value, _Sweep):
        return value
    sweep = _Sweep(window_s, level)
    probe: _Probe = value
    sweep.add(probe[item], probe[2], probe[3], probe[4])
    return sweep


class PortScan(Detector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, HANDSHAKE_INCOMPLETE, context)
        self.window_s: float = t.port_scan_window_s
        self.ports: int = t.port_scan_ports
        self.hosts: int = t.port_scan_hosts
        self.max_pairs: int = t.max_tracked_sources
        # (source, host) -> its ports, (source, port) -> its hosts: a `_Sweep`, or a `_Probe` until the
        # pair's second failed attempt
        self.vertical: dict[tuple[bytes, bytes], Any] = {}
        self.horizontal: dict[tuple[bytes, int], Any] = {}
        self.sweeps: list[_Sweep] = []  # the `_Sweep`s of both (the ones `prune` has work in)
        # source -> the `_Probe` of an attempt whose two pairs were both new: the pairs, held here as one
        # entry until the source's next attempt (a spoofed flood's sources send one), count as pairs of both
        self.firsts: dict[bytes, _Probe] = {}
        # the scans found (`findings`), as their rows name them: (source, host, 0) of a vertical scan,
        # (source, "", port) of a horizontal one -> (first, last) failed attempt
        self.scans: dict[tuple[str, str, int], tuple[float, float]] = {}

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        if f.syn_ts is None or f.handshake_done_ts is not None or f.client_payload_packets:
            return False
        ts = end = f.syn_ts
        if f.synack_ts is None:
            outcome = 0 if f.server_rst_ts is not None else 1
            if f.server_rst_ts is not None and f.server_rst_ts > ts:
                end = f.server_rst_ts
        else:
            outcome = 2
        syn: Any = f.syn_ts
        probe: _Probe = (r.server_ip, r.server_port, syn, syn if end == ts else f.server_rst_ts, outcome)
        source = r.client_ip
        first = self.firsts.pop(source, None)
        if first is not None:
            self._split(source, first)
        vkey, hkey = (source, r.server_ip), (source, r.server_port)
        if (
            self.ports > 1
            and self.hosts > 1
            and vkey not in self.vertical
            and hkey not in self.horizontal
            and len(self.vertical) + len(self.firsts) < self.max_pairs
            and len(self.horizontal) + len(self.firsts) < self.max_pairs
        ):
            self.firsts[source] = probe  # two new pairs, one item each: below either level
            return False
        hit = self._add(self.vertical, vkey, probe, _PORT, self.ports)
        if self._add(self.horizontal, hkey, probe, _HOST, self.hosts):
            hit = True
        return hit

    def _split(self, source: bytes, first: _Probe) -> None:
        """Hold a source's first attempt in its two pairs (each new: it was the source's only attempt)."""
        self.vertical[(source, first[_HOST])] = first
        self.horizontal[(source, first[_PORT])] = first

    def _split_all(self) -> None:
        for source, first in self.firsts.items():
            self._split(source, first)
        self.firsts.clear()

    def _add(self, sweeps: dict[Any, Any], key: Any, probe: _Probe, item: int, level: int) -> bool:
        """Count one failed attempt (`probe`) of the pair `key`, which counts its `item`; whether the pair's
        window reached `level`."""
        value = sweeps.get(key)
        if value is None:
            if len(sweeps) + len(self.firsts) >= self.max_pairs:
                return False
            if level > 1:
                sweeps[key] = probe
                return False  # one item in the window
            sweep = sweeps[key] = _Sweep(self.window_s, level)
            self.sweeps.append(sweep)
        elif isinstance(value, _Sweep):
            sweep = value
        else:
            sweep = sweeps[key] = _sweep(value, self.window_s, level, item)
            self.sweeps.append(sweep)
        return sweep.add(probe[item], probe[2], probe[3], probe[4]) >= level

    def prune(self, latest: float) -> None:
        for sweep in self.sweeps:
            sweep.window.prune(latest)

    def merge(self, other: Any, ids: list[int]) -> None:
        self._split_all()
        other._split_all()
        for mine, theirs, level, item in (
            (self.vertical, other.vertical, self.ports, _PORT),
            (self.horizontal, other.horizontal, self.hosts, _HOST),
        ):
            for key, value in theirs.items():
                found = mine.get(key)
                if found is None:
                    if len(mine) < self.max_pairs:
                        mine[key] = value
                        if isinstance(value, _Sweep):
                            self.sweeps.append(value)
                    continue
                if not isinstance(found, _Sweep):
                    found = mine[key] = _sweep(found, self.window_s, level, item)
                    self.sweeps.append(found)
                found.merge(_sweep(value, self.window_s, level, item))

    def findings(self) -> list[Finding]:
        out = []
        for (source, host), value in self.vertical.items():
            if not isinstance(value, _Sweep):
                continue  # one attempt: below any level (a level of 1 makes a sweep at once)
            sweep = value
            sweep.window.result()
            if sweep.window.peak >= self.ports:
                what = "%s ports of %s" % (sweep.distinct(), format_ip(host))
                out.append(self._finding(source, format_ip(host), 0, sweep, what, "ports", "a port scan"))
        for (source, port), value in self.horizontal.items():
            if not isinstance(value, _Sweep):
                continue
            sweep = value
            sweep.window.result()
            if sweep.window.peak >= self.hosts:
                what = "port %d of %s hosts" % (port, sweep.distinct())
                out.append(self._finding(source, "", port, sweep, what, "hosts", "a horizontal scan"))
        return out

    def _finding(
        self, source: bytes, server_ip: str, server_port: int, sweep: _Sweep, what: str, targets: str, name: str
    ) -> Finding:
        """One sweep's finding: `what` it tried, new `targets` per window, and the scan's `name`."""
        self.scans[(format_ip(source), server_ip, server_port)] = (sweep.first, sweep.last)
        return Finding(
            KIND,
            "warning",
            sweep.first,
            sweep.last,
            format_ip(source),
            None,
            server_ip,
            server_port,
            sweep.refused + sweep.unanswered + sweep.half_open,
            "%s tried %s over %.1f s (up to %d new %s in %.0f s), mostly failing: %s (%s; the attempts are "
            "counted here, not as connection_refused, syn_timeout or missing_third_ack rows)"
            % (
                format_ip(source),
                what,
                sweep.last - sweep.first,
                sweep.window.peak,
                targets,
                self.window_s,
                sweep.outcomes(),
                name,
            ),
        )

    def folds(self, finding: Finding) -> bool:
        """A row of one client, about its failed attempts (`FOLDED`), that a scan found here covers (the
        scanned host, or the scanned port, from the scanning source, starting while the scan went on): a
        result of the scan, not of a service."""
        if finding.kind not in FOLDED or not finding.client_ip:
            return False
        for key in ((finding.client_ip, finding.server_ip, 0), (finding.client_ip, "", finding.server_port)):
            span = self.scans.get(key)
            if span is not None and span[0] <= finding.first_seen <= span[1]:
                return True
        return False


DETECTOR: Final = PortScan
